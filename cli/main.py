"""``fakeguard``: serve, migrate, keys, train, models."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.text_corpus import LabeledListing


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.settings import Settings
    from store.migrate import upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_migrate:
        upgrade(settings.db_url)
        print(f"fakeguard: database at head ({_safe_url(settings.db_url)})", file=sys.stderr)
    if not args.no_default_model:
        from training.train_text import ensure_default_model

        ensure_default_model(_models_dir(args))
    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Workers write their counters to files here; /metrics sums them (any worker answers).
        import tempfile

        metrics_dir = tempfile.mkdtemp(prefix="fakeguard-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "api.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            proxy_headers=True,
            access_log=False,  # fakeguard.access logs each request, with its id
            timeout_graceful_shutdown=10,
        )
    finally:
        if metrics_dir is not None:
            import shutil

            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _cmd_migrate(args: argparse.Namespace) -> int:
    from api.settings import Settings
    from store.migrate import upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url, args.revision)
    print(f"migrated {_safe_url(settings.db_url)} to {args.revision}")
    return 0


def _cmd_keys_create(args: argparse.Namespace) -> int:
    from api.settings import Settings
    from store.brands import BrandRepository
    from store.db import make_engine, make_session_factory, session_scope
    from store.keys import ApiKeyRepository
    from store.migrate import upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.role == "brand" and not args.brand:
        print("error: --brand BRAND_ID is required for role 'brand'", file=sys.stderr)
        return 2
    if args.role != "brand" and args.brand:
        print("error: only brand keys take --brand", file=sys.stderr)
        return 2
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            if args.brand and BrandRepository(session).get(args.brand) is None:
                print(f"error: brand {args.brand} not found", file=sys.stderr)
                return 1
            row, key = ApiKeyRepository(session).create(args.role, args.brand, args.name)
    finally:
        engine.dispose()
    print(key)
    print(
        f"(key id {row.id}, role {row.role}; store it now: it is not shown again)", file=sys.stderr
    )
    return 0


def _cmd_catalog_rehash(args: argparse.Namespace) -> int:
    from api.catalog import rehash_references
    from api.settings import Settings
    from store.blobs import LocalBlobStore
    from store.db import make_engine, make_session_factory
    from store.migrate import upgrade

    settings = Settings()
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    try:
        report = rehash_references(
            make_session_factory(engine),
            LocalBlobStore(settings.blobs_path),
            everything=args.all,
            progress=not args.quiet,
        )
    finally:
        engine.dispose()
    print(f"rehashed {report.rehashed} references")
    for ref_id, reason in report.failed:
        print(f"  failed {ref_id}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def _cmd_keys_generate(_: argparse.Namespace) -> int:
    from store.keys import generate_key

    print(generate_key())
    return 0


def _models_dir(args: argparse.Namespace) -> str:
    import os

    return str(args.models_dir or os.environ.get("FAKEGUARD_MODELS_DIR") or "models")


def _cmd_train(args: argparse.Namespace) -> int:
    from detector.artifacts import ArtifactError
    from detector.classifier import TextModel
    from training.registry import promote
    from training.text_corpus import ListingFormatError, generate_corpus, load_listings
    from training.train_text import train

    models_dir = _models_dir(args)
    listings = []
    described: dict[str, object] = {}
    try:
        for path in args.data or []:
            listings.extend(load_listings(path))
    except (OSError, ListingFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.data:
        described["files"] = list(args.data)
    if args.from_reviews:
        reviewed = _review_labels()
        listings.extend(reviewed)
        described["review_labels"] = len(reviewed)
        print(f"{len(reviewed)} reviewer labels (counterfeit/genuine) from the database")
    if not args.data or args.with_seed_corpus:
        print(f"generating the synthetic seed corpus (n={args.n}, seed={args.seed})")
        listings.extend(generate_corpus(args.n, args.seed))
        described["corpus"] = f"generate_corpus(n={args.n}, seed={args.seed})"
    thresholds = {"review": args.review_threshold, "block": args.block_threshold}
    previous: TextModel | None = None
    try:
        from detector.artifacts import load_active

        previous = load_active(models_dir)
    except ArtifactError:
        pass  # nothing to compare with
    result = train(
        listings,
        models_dir=models_dir,
        thresholds=thresholds,
        seed=args.seed,
        cv=not args.no_cv,
        plots=not args.no_plots,
        data_description=described,
        log=print,
        previous=previous,
    )
    hold = result.card["metrics"]["holdout"]
    print(f"version {result.version}: held-out PR-AUC {hold['pr_auc']}, ROC-AUC {hold['roc_auc']}")
    for name, m in hold["at_thresholds"].items():
        print(f"  {name} >= {m['threshold']}: precision {m['precision']}, recall {m['recall']}")
    for path in result.plots:
        print(f"  plot {path}")
    if not args.no_promote:
        try:
            was = promote(models_dir, result.version, note="fakeguard train")
        except ArtifactError as exc:
            print(f"error: not promoted: {exc}", file=sys.stderr)
            return 1
        print(f"promoted {result.version} (was {was})")
    return 0


def _review_labels() -> list[LabeledListing]:
    """Reviewers' latest counterfeit/genuine labels, as training listings (``source="review"``)."""
    from api.settings import Settings
    from store.db import make_engine, make_session_factory, session_scope
    from store.review import ReviewRepository
    from training.text_corpus import LabeledListing

    engine = make_engine(Settings().db_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return [
                LabeledListing(
                    listing_id=f"review:{version.id}",
                    seller_id=version.seller_id,
                    title=version.title,
                    description=version.description or "",
                    price_amount=float(version.price_amount)
                    if version.price_amount is not None
                    else None,
                    price_currency=version.price_currency,
                    brand_claimed=version.brand_claimed,
                    category=version.category,
                    language=None,
                    label=1 if label == "counterfeit" else 0,
                    source="review",
                )
                for version, label in ReviewRepository(session).labelled_listings()
            ]
    finally:
        engine.dispose()


def _cmd_models_list(args: argparse.Namespace) -> int:
    from detector.artifacts import ArtifactError, list_versions

    try:
        versions = list_versions(_models_dir(args))
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not versions:
        print(f"no text models in {_models_dir(args)}")
    for v in versions:
        mark = "*" if v["active"] else " "
        state = "ok" if v["compatible"] else f"unusable: {v['error']}"
        print(f"{mark} {v['version']}  {v['created_at']}  PR-AUC {v.get('pr_auc')}  {state}")
    return 0


def _cmd_models_promote(args: argparse.Namespace) -> int:
    from detector.artifacts import ArtifactError
    from training.registry import promote

    try:
        previous = promote(_models_dir(args), args.version, note="fakeguard models promote")
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"active: {args.version} (was {previous})")
    return 0


def _cmd_models_rollback(args: argparse.Namespace) -> int:
    from detector.artifacts import ArtifactError
    from training.registry import rollback

    try:
        version = rollback(_models_dir(args))
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"active: {version}")
    return 0


def _cmd_models_ensure_default(args: argparse.Namespace) -> int:
    from training.train_text import ensure_default_model

    print(f"active: {ensure_default_model(_models_dir(args))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fakeguard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate the database, then serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate before serving")
    serve.add_argument(
        "--no-default-model",
        action="store_true",
        help="do not build the seed-corpus text model when no usable one is active",
    )
    serve.add_argument("--models-dir", help="default: $FAKEGUARD_MODELS_DIR or ./models")
    serve.set_defaults(func=_cmd_serve)

    migrate = sub.add_parser("migrate", help="bring the database schema to a revision")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(func=_cmd_migrate)

    keys = sub.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=["admin", "ingest", "reviewer", "brand"])
    create.add_argument("--brand", help="brand id (role brand only)")
    create.add_argument("--name", help="a label for people")
    create.set_defaults(func=_cmd_keys_create)
    generate = keys_sub.add_parser(
        "generate", help="print a fresh key value (e.g. for FAKEGUARD_BOOTSTRAP_ADMIN_KEY)"
    )
    generate.set_defaults(func=_cmd_keys_generate)

    models_help = "models directory (default: $FAKEGUARD_MODELS_DIR or ./models)"
    train = sub.add_parser("train", help="fit, evaluate and save the text classifier")
    train.add_argument("--data", nargs="+", metavar="FILE", help="labelled listings (.jsonl/.csv)")
    train.add_argument(
        "--with-seed-corpus",
        action="store_true",
        help="add the synthetic seed corpus to --data (it is used alone without --data)",
    )
    train.add_argument(
        "--from-reviews",
        action="store_true",
        help="add reviewers' counterfeit/genuine decisions from the database "
        "($FAKEGUARD_DATABASE_URL); the model card records how many",
    )
    train.add_argument("--n", type=int, default=20000, help="seed corpus size")
    train.add_argument("--seed", type=int, default=7, help="corpus and split seed")
    train.add_argument("--models-dir", help=models_help)
    train.add_argument("--no-promote", action="store_true", help="save but do not activate")
    train.add_argument("--no-cv", action="store_true", help="skip cross-validation")
    train.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    train.add_argument("--review-threshold", type=float, default=0.5)
    train.add_argument("--block-threshold", type=float, default=0.85)
    train.set_defaults(func=_cmd_train)

    models = sub.add_parser("models", help="text model registry")
    models.add_argument("--models-dir", help=models_help)
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="versions, * marks the active one").set_defaults(
        func=_cmd_models_list
    )
    promote = models_sub.add_parser("promote", help="make a version active")
    promote.add_argument("version")
    promote.set_defaults(func=_cmd_models_promote)
    models_sub.add_parser("rollback", help="re-activate the previous version").set_defaults(
        func=_cmd_models_rollback
    )
    models_sub.add_parser(
        "ensure-default", help="build and promote the seed-corpus model if none is usable"
    ).set_defaults(func=_cmd_models_ensure_default)
    catalog = sub.add_parser("catalog", help="reference catalog maintenance")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    rehash = catalog_sub.add_parser(
        "rehash", help="recompute reference hashes for the current hash algorithm version"
    )
    rehash.add_argument("--all", action="store_true", help="every reference, not only stale ones")
    rehash.add_argument("--quiet", action="store_true", help="no progress bar")
    rehash.set_defaults(func=_cmd_catalog_rehash)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

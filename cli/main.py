"""``fakeguard``: serve, migrate, keys."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.settings import Settings
    from store.migrate import upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_migrate:
        upgrade(settings.db_url)
        print(f"fakeguard: database at head ({_safe_url(settings.db_url)})", file=sys.stderr)
    uvicorn.run(
        "api.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
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


def _cmd_keys_generate(_: argparse.Namespace) -> int:
    from store.keys import generate_key

    print(generate_key())
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

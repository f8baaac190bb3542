"""CPU per image listing, in-process, and where it goes: the scoring path without HTTP.

Run with ``python -m bench.bench_image_listing [--references 1000] [--batches 8]``. About 2
minutes (plus ~35 s the first time when ``./models`` has no usable text model).

The app is built with ``create_app`` (SQLite in a temporary directory); the references (the
synthetic 800x800 JPEGs of :mod:`bench.bench_scoring`) are uploaded through it. Then:

1. Stage 1 alone over the 300 listing images of bench_scoring's pool: how many have index
   candidates (and so get stage 2), reference copies and the rest apart, with their distances.
2. Batches of 100 listings with one inline 1000x1000 JPEG each go through
   ``api.ingest.service.score_listings`` (base64, decode and hashing, catalog search,
   verification, text model, blob writes, storing) on this thread, the images on the engine's
   thread pool as in the server. Printed: CPU milliseconds per listing (this process, all
   threads; median over the batches) and the same for bench_scoring's naive pipeline (Pillow full
   decode + imagehash.phash + a Python loop over the references + TF-IDF/LogisticRegression),
   measured in the same process.
3. Batches again, images on this thread, under cProfile: the share of each step.

CPU time, not wall time: the machine is shared, and CPU per listing is what decides how many
listings two cores can score.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from bench.bench_scoring import (
    NaivePipeline,
    copy_active_model,
    make_dataset,
)

#: (label, (file suffix, function name)) of the steps the profile is cut into, in path order.
STEPS: tuple[tuple[str, tuple[str, str]], ...] = (
    ("base64 decode", ("api/ingest/service.py", "_gather_images")),
    ("content hash (sha256)", ("api/ingest/service.py", "_content_hash")),
    ("retry look-up", ("store/listings.py", "existing_verdicts")),
    ("decode for hashing", ("detector/images.py", "decode")),
    ("query hashes", ("detector/images.py", "hash_query")),
    ("catalog search", ("detector/matching.py", "search")),
    ("stage-2 preparation (prepare_query)", ("detector/verify.py", "prepare_query")),
    ("stage-2 verification (verify)", ("detector/verify.py", "verify")),
    ("text model, signals, verdict", ("detector/scorer.py", "score_many")),
    ("blob writes", ("api/ingest/service.py", "_store_blobs")),
    ("snapshots", ("api/ingest/service.py", "_snapshot")),
    ("storing (statements, commit)", ("api/ingest/service.py", "_persist")),
)


class Inline(Executor):
    """Runs ``map`` on the calling thread (cProfile sees one thread only)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future

    def map(self, fn: Callable[..., Any], *iterables: Any, **_: Any) -> Iterator[Any]:
        return iter([fn(*args) for args in zip(*iterables, strict=False)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--references", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=8, help="timed batches of 100")
    parser.add_argument("--profiled-batches", type=int, default=3)
    args = parser.parse_args(argv)

    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from api.app import create_app
    from api.ingest import service
    from api.ingest.schemas import ListingIn
    from api.settings import Settings
    from detector.images import decode, hash_query
    from store.db import session_scope
    from store.keys import generate_key

    tmp = Path(tempfile.mkdtemp(prefix="fakeguard-bench-image-"))
    models = tmp / "models"
    if copy_active_model(models) is None:
        from training.train_text import ensure_default_model

        print("building the default text model (~35 s)", file=sys.stderr)
        ensure_default_model(models, n=3000, log=lambda *_: None, progress=False)
    data = make_dataset(args.references)
    admin = generate_key()
    settings = Settings(
        data_dir=tmp / "data",
        database_url=f"sqlite:///{tmp}/fakeguard.db",
        bootstrap_admin_key=SecretStr(admin),
        models_dir=models,
        migrate_on_start=True,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {admin}"}
        brand = client.post("/v1/brands", json={"name": "Acme"}, headers=headers).json()["id"]
        for start in range(0, len(data.references), 50):
            files = [
                ("files", (f"ref-{start + j}.jpg", d, "image/jpeg"))
                for j, d in enumerate(data.references[start : start + 50])
            ]
            r = client.post(f"/v1/brands/{brand}/references", files=files, headers=headers)
            if r.status_code != 201:
                raise RuntimeError(f"reference upload failed: {r.status_code} {r.text[:200]}")
        ctx = app.state.ctx
        index = ctx.catalog.index
        print(f"{len(index)} references, {index.n_hashes} hashes in the index")

        # 1. stage 1 alone
        with_cands = {True: 0, False: 0}
        distances: dict[bool, list[int]] = {True: [], False: []}
        for k, tagged in enumerate(data.pool):
            found = index.search(hash_query(decode(tagged.data(k))))
            copy = k in data.copies
            if found:
                with_cands[copy] += 1
                distances[copy].append(found[0].distance)
        n_copies = len(data.copies)
        n_other = len(data.pool) - n_copies
        for copy, label, n in ((True, "reference copies", n_copies), (False, "others", n_other)):
            counts = Counter(distances[copy])
            spread = ", ".join(f"{d}: {counts[d]}" for d in sorted(counts))
            print(
                f"stage 1, {label}: {with_cands[copy]}/{n} with candidates "
                f"(nearest distance: count {spread})"
            )

        counter = iter(range(10**9))
        texts = data.texts

        def bodies(n: int) -> list[ListingIn]:
            out = []
            for _ in range(n):
                k = next(counter)
                text = texts[k % len(texts)]
                image = data.pool[k % len(data.pool)].data(k)
                out.append(
                    ListingIn.model_validate(
                        {
                            "listing_id": f"bench-{time.time_ns()}-{k}",
                            "seller_id": text.seller_id or f"seller-{k}",
                            "title": text.title,
                            "description": text.description,
                            "images": [{"data": base64.b64encode(image).decode()}],
                        }
                    )
                )
            return out

        def batch_cpu() -> float:
            listings = bodies(100)
            t0 = time.process_time()
            with session_scope(ctx.sessions) as session:
                results = service.score_listings(session, ctx, listings)
            spent = (time.process_time() - t0) * 1000 / len(listings)
            if not all(getattr(r, "verdict_id", None) for r in results):
                raise RuntimeError(f"a listing was not scored: {results[:3]}")
            return spent

        for _ in range(2):  # warm up: reference views, text model
            batch_cpu()
        # 2. CPU per listing, the engine's thread pool as in the server
        per = [batch_cpu() for _ in range(args.batches)]
        naive = NaivePipeline(data.reference_phash)
        texts_joined = [f"{t.title} {t.description}" for t in texts]
        naive.score(texts_joined[0], data.pool[0].data(0))
        t0 = time.process_time()
        for k in range(len(data.pool)):
            naive.score(texts_joined[k % len(texts)], data.pool[k].data(k))
        naive_ms = (time.process_time() - t0) * 1000 / len(data.pool)
        ours = statistics.median(per)
        print(
            f"CPU per image listing, batches of 100: median {ours:.2f} ms "
            f"(batches: {', '.join(f'{p:.1f}' for p in per)}); "
            f"naive pipeline {naive_ms:.2f} ms; ratio naive/ours x{naive_ms / ours:.2f}"
        )

        # 3. where it goes
        ctx.scoring.pool = Inline()
        batch_cpu()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.profiled_batches):
            batch_cpu()
        profile.disable()
    stats = pstats.Stats(profile)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for k, v in raw.items())  # all functions' own time
    n = args.profiled_batches * 100
    print(f"\nwhere an image listing's CPU goes (cProfile, images on this thread, {n} listings):")
    accounted = 0.0
    for label, (suffix, name) in STEPS:
        cum = sum(v[3] for (f, _, fn), v in raw.items() if fn == name and f.endswith(suffix))
        accounted += cum
        print(f"  {label:<38} {cum * 1000 / n:6.2f} ms  {100 * cum / total:5.1f} %")
    rest = total - accounted
    print(f"  {'everything else':<38} {rest * 1000 / n:6.2f} ms  {100 * rest / total:5.1f} %")
    print(f"  {'total (profiled)':<38} {total * 1000 / n:6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark detector.index.HammingIndex against a brute-force numpy scan (and faiss if installed).

Run with ``python -m bench.bench_index [--sizes 1000000 10000000] [--queries 100]``.
Single-threaded: thread pools are limited to one thread before numpy loads. Prints, per size:
build time, memory per hash, median and p95 single-query latency at d = 8, 10, 12, the ratio
against the brute-force scan measured in the same run, batch throughput, and the cost of the
mutations (search with a full delta, remove, compaction).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from detector.index import HammingIndex  # noqa: E402

DISTANCES = (8, 10, 12)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def latencies(fn: Callable[[np.uint64], object], queries: npt.NDArray[np.uint64]) -> np.ndarray:
    return np.array([timed(lambda q=q: fn(q)) for q in queries]) * 1e3  # ms


def search_one(index: HammingIndex, query: np.uint64, d: int) -> object:
    return index.search(np.array([query]), d)


def brute_force(hashes: npt.NDArray[np.uint64], query: np.uint64, d: int) -> object:
    """The naive scan the index is compared with."""
    return np.flatnonzero(np.bitwise_count(hashes ^ query) <= d)


def make_queries(
    rng: np.random.Generator, stored: npt.NDArray[np.uint64], n: int, d: int
) -> npt.NDArray[np.uint64]:
    """Half near-copies of stored hashes (0..d flipped bits), half unrelated images."""
    near = stored[rng.integers(0, stored.size, size=n // 2)].copy()
    for i in range(near.size):
        for bit in rng.choice(64, size=int(rng.integers(0, d + 1)), replace=False):
            near[i] ^= np.uint64(1) << np.uint64(bit)
    far = rng.integers(0, 2**64, size=n - near.size, dtype=np.uint64)
    return np.concatenate([near, far])


def faiss_latencies(index: object, codes: np.ndarray, d: int) -> list[float]:
    search = getattr(index, "range_search")  # noqa: B009
    return [timed(lambda c=codes[i : i + 1]: search(c, d + 1)) for i in range(codes.shape[0])]


def faiss_section(
    hashes: npt.NDArray[np.uint64], queries: dict[int, npt.NDArray[np.uint64]], n_q: int
) -> None:
    try:
        faiss = importlib.import_module("faiss")
    except ImportError:
        print("  faiss-cpu not installed: skipped")
        return
    faiss.omp_set_num_threads(1)
    codes = hashes.view(np.uint8).reshape(-1, 8)
    flat = faiss.IndexBinaryFlat(64)
    build_flat = timed(lambda: flat.add(codes))
    multi = faiss.IndexBinaryMultiHash(64, 3, 21)
    build_multi = timed(lambda: multi.add(codes))
    print(
        f"  faiss build: IndexBinaryFlat {build_flat:.2f} s, "
        f"IndexBinaryMultiHash(3 x 21 bits) {build_multi:.2f} s"
    )
    for d in DISTANCES:
        q = queries[d][:n_q]
        qb = q.view(np.uint8).reshape(-1, 8)
        flat_ms = faiss_latencies(flat, qb, d)
        multi.nflip = d // 3  # exact: 3 * (nflip + 1) > d over the 63 hashed bits
        multi_ms = faiss_latencies(multi, qb, d)
        print(
            f"  faiss d={d:2d}: IndexBinaryFlat median {np.median(flat_ms) * 1e3:7.2f} ms | "
            f"IndexBinaryMultiHash median {np.median(multi_ms) * 1e3:7.2f} ms "
            f"p95 {np.percentile(multi_ms, 95) * 1e3:7.2f} ms"
        )


def bench_size(n: int, n_queries: int, n_brute: int, with_faiss: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    ref_keys = (np.arange(n) // 8).astype(np.int32)  # 8 variants per reference
    variants = (np.arange(n) % 8).astype(np.uint8)
    print(f"\n=== {n:,} random hashes ===")

    index = HammingIndex()
    build = timed(lambda: index.add(hashes, ref_keys, variants))
    usage = index.memory_usage()
    structure = usage["hashes"] + usage["offsets"] + usage["row_ids"]
    print(f"build (add + compaction into the main segment): {build:.2f} s   {index!r}")
    print(
        f"memory: {structure / n:.2f} bytes/hash for the index "
        f"(hashes {usage['hashes'] / n:.2f} + row ids {usage['row_ids'] / n:.2f} + "
        f"offsets {usage['offsets'] / n:.2f}); {index.nbytes() / n:.2f} bytes/hash with ref "
        f"keys and variants ({index.nbytes() / 2**20:.1f} MiB)"
    )

    queries = {d: make_queries(rng, hashes, n_queries, d) for d in DISTANCES}
    print(
        f"single-query latency over {n_queries} queries (half near-copies, half unrelated), "
        f"brute force over {n_brute}:"
    )
    for d in DISTANCES:
        q = queries[d]
        index.search(q[:2], d)  # warm the flip-mask cache
        ms = latencies(functools.partial(search_one, index, d=d), q)
        brute = latencies(functools.partial(brute_force, hashes, d=d), q[:n_brute])
        batch = timed(functools.partial(index.search, q, d)) * 1e3 / q.size
        found = index.search(q[:n_brute], d)
        exact = all(
            len(m) == np.count_nonzero(np.bitwise_count(hashes ^ x) <= d)
            for x, m in zip(q[:n_brute], found, strict=True)
        )
        hits = sum(len(m) for m in index.search(q, d))
        print(
            f"  d={d:2d}: index median {np.median(ms):6.3f} ms  p95 {np.percentile(ms, 95):6.3f} ms"
            f" | brute force median {np.median(brute):7.2f} ms"
            f" | speed-up x{np.median(brute) / np.median(ms):6.1f}"
            f" | batch of {q.size}: {batch:6.3f} ms/query | matches {hits} | exact {exact}"
        )

    # Mutations: a nearly full delta, a remove (tombstone), and the compaction that follows.
    limit = index.delta_limit
    extra = rng.integers(0, 2**64, size=limit, dtype=np.uint64)
    base = int(ref_keys[-1]) + 1
    extra_refs = (base + np.arange(limit) // 8).astype(np.int32)
    add_ms = timed(lambda: index.add(extra, extra_refs, np.zeros(limit, dtype=np.uint8))) * 1e3
    q = queries[10]
    ms = latencies(functools.partial(search_one, index, d=10), q)
    print(
        f"with a full delta ({limit:,} rows, added in {add_ms:.0f} ms): d=10 median "
        f"{np.median(ms):.3f} ms  p95 {np.percentile(ms, 95):.3f} ms"
    )
    remove_ms = timed(lambda: index.remove(7)) * 1e3
    compact_s = timed(index.compact)
    print(
        f"remove(ref) {remove_ms:.1f} ms; compaction of {len(index):,} rows {compact_s:.2f} s "
        f"(amortised over delta_limit={limit:,} mutations: "
        f"{compact_s / limit * 1e6:.0f} us each)"
    )
    if with_faiss:
        faiss_section(hashes, queries, min(n_queries, 30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--brute", type=int, default=20, help="queries timed by brute force")
    parser.add_argument("--faiss", action="store_true", help="also time faiss-cpu if installed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        importlib.import_module("threadpoolctl").threadpool_limits(1)
    print(f"numpy {np.__version__}, single-threaded")
    for n in args.sizes:
        bench_size(n, args.queries, args.brute, args.faiss, args.seed)


if __name__ == "__main__":
    main()

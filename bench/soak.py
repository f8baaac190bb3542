"""Soak: the real server on loopback at a steady request rate with images, for a bounded time.

Run with ``python -m bench.soak [--seconds 300] [--rate 8] [--workers 2] [--image-share 0.5]``.
Starts ``fakeguard serve --workers N`` in a temporary data directory (SQLite; the server and
its workers in their own process group, always stopped at the end), registers brands with
``--references`` synthetic reference JPEGs, then sends single-listing scoring requests on a fixed
schedule (open loop: a slow answer does not slow the schedule) for ``--seconds``; a share of
them carry an inline 1000x1000 JPEG (10 % of the pool are copies of references), every listing
with unique bytes. Every ``--sample-seconds`` it reads each worker's resident memory (VmRSS).

Prints the request count, errors (any answer other than 200, or a transport failure: there must
be none), latency percentiles, each worker's memory over time, and whether it levels off: the
highest RSS in the last third of the run may exceed the highest of the middle third by at most
``max(--growth-percent of it, --growth-mb)``. Exits 1 when there were errors or memory grew.
Everything stays on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.bench_scoring import (
    Bodies,
    copy_active_model,
    create_key,
    free_port,
    generate_admin_key,
    load_references,
    make_dataset,
    running_server,
    worker_pids,
)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    late: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def levels_off(
    series: Sequence[tuple[float, float]], duration: float, percent: float, mb: float
) -> tuple[bool, str]:
    """Highest RSS of the last third vs the middle third of the run."""
    middle = [r for t, r in series if duration / 3 <= t < 2 * duration / 3]
    last = [r for t, r in series if t >= 2 * duration / 3]
    if not middle or not last:
        return True, "too few samples to judge"
    allowed = max(max(middle) * percent / 100, mb)
    growth = max(last) - max(middle)
    verdict = "levels off" if growth <= allowed else "GROWS"
    return (
        growth <= allowed,
        f"{verdict}: {growth:+.1f} MB over the last third (allowed {allowed:.0f})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--rate", type=float, default=8.0, help="requests per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--references", type=int, default=200)
    parser.add_argument("--image-share", type=float, default=0.5)
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--growth-percent", type=float, default=5.0)
    parser.add_argument("--growth-mb", type=float, default=24.0)
    parser.add_argument("--models-from", type=Path, help="a models directory to serve from")
    parser.add_argument("--clients", type=int, default=16, help="most requests in flight")
    args = parser.parse_args(argv)
    if not 5 <= args.seconds <= 3600 or not 0 < args.rate <= 200:
        parser.error("--seconds must be in 5..3600 and --rate in (0, 200]")

    data = make_dataset(args.references)
    admin_key = generate_admin_key()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    results = Results()
    memory: dict[int, list[tuple[float, float]]] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fg-soak-")))
        if args.models_from:
            shutil.copytree(args.models_from, tmp / "models")
        else:
            copy_active_model(tmp / "models")
        server = stack.enter_context(
            running_server(tmp, port, args.workers, admin_key, None, "warning")
        )
        catalog = load_references(url, admin_key, data.references, 4, 1)
        key = create_key(url, admin_key, "ingest")
        bodies = Bodies(data, f"soak{port}")
        local = threading.local()
        clients: list[httpx.Client] = []

        def client() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client(
                    base_url=url,
                    timeout=60.0,
                    headers={"Authorization": f"Bearer {key}", "content-type": "application/json"},
                )
                clients.append(local.client)
            c: httpx.Client = local.client
            return c

        def send(n: int) -> None:
            body, _ = bodies.single(with_image=(n % 100) < args.image_share * 100)
            start = time.perf_counter()
            try:
                r = client().post("/v1/listings/score", content=body)
            except httpx.HTTPError as exc:
                results.error(f"transport: {type(exc).__name__}: {exc}")
                return
            if r.status_code == 200:
                results.ok(time.perf_counter() - start)
            else:
                results.error(f"{r.status_code}: {r.text[:200]}")

        print(
            f"soak: {args.workers} workers, {catalog.uploaded} references, {args.rate:g} "
            f"requests/s for {args.seconds:g} s, {args.image_share:.0%} with a 1000x1000 JPEG"
        )
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=args.clients))
        begin = time.monotonic()
        next_sample = 0.0
        n = 0
        while (elapsed := time.monotonic() - begin) < args.seconds:
            if elapsed >= next_sample:
                for pid in worker_pids(server.proc.pid):
                    rss = rss_mb(pid)
                    if rss is not None:
                        memory.setdefault(pid, []).append((elapsed, rss))
                next_sample += args.sample_seconds
            due = begin + n / args.rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 0.05))
                continue
            if wait < -1.0:
                results.late += 1
            pool.submit(send, n)
            n += 1
        pool.shutdown(wait=True)
        for c in clients:  # idle keep-alive connections would hold up the server's shutdown
            c.close()

    lat = results.latencies
    print(f"requests: {n}, answered 200: {len(lat)}, errors: {len(results.errors)}")
    for e in results.errors[:5]:
        print(f"  error: {e}")
    if lat:
        print(
            f"latency ms: p50 {percentile(lat, 0.5) * 1000:.0f}, p95 "
            f"{percentile(lat, 0.95) * 1000:.0f}, p99 {percentile(lat, 0.99) * 1000:.0f}, "
            f"max {max(lat) * 1000:.0f}, mean {statistics.mean(lat) * 1000:.0f}"
        )
    if results.late:
        print(f"requests sent over 1 s late (client could not keep the rate): {results.late}")
    grows = False
    for pid, series in sorted(memory.items()):
        steady, verdict = levels_off(series, args.seconds, args.growth_percent, args.growth_mb)
        grows |= not steady
        points = " ".join(f"{t:.0f}s:{r:.0f}" for t, r in series[:: max(1, len(series) // 12)])
        print(f"worker {pid} RSS MB  {points}  -> {verdict}")
    if not memory:
        print("worker memory: not measured (no /proc or no separate workers)")
    return 1 if results.errors or grows else 0


if __name__ == "__main__":
    sys.exit(main())

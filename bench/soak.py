"""Soak: the real server on loopback at a steady request rate with images, for a bounded time.

Run with ``python -m bench.soak [--minutes 5] [--rate 8] [--workers 2] [--image-share 0.5]
[--database sqlite|postgresql://postgres@127.0.0.1:5432/test]``. Starts ``fakeguard serve
--workers N`` in a temporary data directory (SQLite there, or a fresh PostgreSQL database on the
server ``--database`` names, dropped at the end; the server and its workers in their own
process group, always stopped at the end), registers brands with ``--references`` synthetic
reference JPEGs, then sends single-listing scoring requests on a fixed schedule (open loop: a
slow answer does not slow the schedule) for ``--minutes`` (or ``--seconds``); a share of them
carry an inline 1000x1000 JPEG (10 % of the pool are copies of references), the others are text
only, every listing with unique bytes. Every ``--sample-seconds`` it reads each worker's
resident memory (VmRSS in ``/proc/<pid>/status``).

Prints the request count, errors (any answer other than 200, or a transport failure: there must
be none), latency percentiles over the run and per ``--window-seconds`` (a minute by default),
each worker's memory over time, and whether it levels off: the mean RSS of the last third of
the run may exceed the mean of the middle third by at most ``max(--growth-percent of it,
--growth-mb)`` (a worker replaced during the run counts as not levelling off). Exits 1 when
there were errors or memory grew. Everything stays on 127.0.0.1 and stops by itself.
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
    postgres_database,
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
    #: (seconds into the run when sent, latency or None for an error), per request
    timeline: list[tuple[float, float | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, sent: float, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.timeline.append((sent, seconds))

    def error(self, sent: float, what: str) -> None:
        with self.lock:
            self.errors.append(what)
            self.timeline.append((sent, None))

    def windows(self, width: float) -> list[tuple[float, int, int, list[float]]]:
        """Per window of ``width`` seconds (by send time): start, requests, errors, latencies."""
        out: dict[int, tuple[int, int, list[float]]] = {}
        for sent, latency in self.timeline:
            n, errors, lat = out.get(int(sent // width), (0, 0, []))
            if latency is None:
                errors += 1
            else:
                lat.append(latency)
            out[int(sent // width)] = (n + 1, errors, lat)
        return [(k * width, *out[k]) for k in sorted(out)]


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def levels_off(
    series: Sequence[tuple[float, float]], duration: float, percent: float, mb: float
) -> tuple[bool, str]:
    """Mean RSS of the last third vs the middle third of the run (the first third is warm-up:
    caches, the model and the reference views filling)."""
    middle = [r for t, r in series if duration / 3 <= t < 2 * duration / 3]
    last = [r for t, r in series if t >= 2 * duration / 3]
    if not middle or not last:
        return False, "NOT JUDGED: no samples in the middle or last third (worker replaced?)"
    base = statistics.mean(middle)
    allowed = max(base * percent / 100, mb)
    growth = statistics.mean(last) - base
    verdict = "levels off" if growth <= allowed else "GROWS"
    return (
        growth <= allowed,
        f"{verdict}: mean {base:.0f} -> {statistics.mean(last):.0f} MB, {growth:+.1f} MB "
        f"({growth / base:+.1%}) middle -> last third (allowed {allowed:.1f} MB)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--minutes", type=float, help="run length in minutes (sets --seconds)")
    parser.add_argument("--window-seconds", type=float, default=60.0, help="latency table rows")
    parser.add_argument(
        "--database",
        default="sqlite",
        help="'sqlite' (in the temp dir) or a PostgreSQL URL whose server gets a fresh database",
    )
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
    if args.minutes is not None:
        args.seconds = args.minutes * 60
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
        database_url = None
        if args.database != "sqlite":
            database_url = stack.enter_context(postgres_database(args.database))
        server = stack.enter_context(
            running_server(tmp, port, args.workers, admin_key, database_url, "warning")
        )
        catalog = load_references(
            url, admin_key, data.references, 4, 1 if database_url is None else 2
        )
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
            sent = time.monotonic() - begin
            try:
                r = client().post("/v1/listings/score", content=body)
            except httpx.HTTPError as exc:
                results.error(sent, f"transport: {type(exc).__name__}: {exc}")
                return
            if r.status_code == 200:
                results.ok(sent, time.perf_counter() - start)
            else:
                results.error(sent, f"{r.status_code}: {r.text[:200]}")

        print(
            f"soak: {args.workers} workers, {'PostgreSQL' if database_url else 'SQLite'}, "
            f"{catalog.uploaded} references, {args.rate:g} requests/s for {args.seconds:g} s, "
            f"{args.image_share:.0%} with a 1000x1000 JPEG"
        )
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=args.clients))
        begin = time.monotonic()
        first_workers = set(worker_pids(server.proc.pid))
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
        last_workers = set(worker_pids(server.proc.pid))
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
    print(f"per {args.window_seconds:g} s (by send time): requests, errors, latency ms")
    for start, count, errors, window in results.windows(args.window_seconds):
        figures = (
            f"p50 {percentile(window, 0.5) * 1000:.0f}  p95 {percentile(window, 0.95) * 1000:.0f}  "
            f"p99 {percentile(window, 0.99) * 1000:.0f}  max {max(window) * 1000:.0f}"
            if window
            else "no answers"
        )
        print(f"  {start:5.0f}s  {count:5d}  {errors:3d}  {figures}")
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
    if first_workers != last_workers:
        grows = True
        print(f"workers REPLACED during the run: {sorted(first_workers)} -> {sorted(last_workers)}")
    return 1 if results.errors or grows else 0


if __name__ == "__main__":
    sys.exit(main())

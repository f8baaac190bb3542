"""End-to-end scoring: the real server over HTTP on loopback, against a naive in-process pipeline.

Run with ``python -m bench.bench_scoring [--workers 2] [--seconds 20] [--references 1000]
[--database sqlite|postgresql://postgres@127.0.0.1:5432]``. About 3-4 minutes with the defaults.

1. Scores the listings below one by one on one thread with a naive pipeline: full Pillow decode,
   ``imagehash.phash``, a Python loop over the reference hashes (Hamming <= 10), TF-IDF +
   LogisticRegression fitted on ``generate_corpus(3000)``. It runs before the server starts.
2. Starts ``fakeguard serve --workers N`` as a subprocess (its own process group, always killed
   at the end) on a free 127.0.0.1 port, in a temporary data directory: SQLite there, or a fresh
   PostgreSQL database created on the server ``--database`` names and dropped at the end. The
   active text model of ``./models`` is copied in when there is one (otherwise the server builds
   the default model, ~35 s). A start where a worker dies (uvicorn then stops the whole server)
   is retried, at most twice, and reported.
3. Over HTTP: creates four brands, uploads the references (synthetic 800x800 JPEGs, 50 per
   multipart request; one request at a time on SQLite, two on PostgreSQL) and an ingest key.
   Setup requests answered 503 are retried (reported); measured requests never are.
4. Drives the server with httpx (one thread and one keep-alive connection per concurrent client)
   for ``--seconds`` per workload, after one short warm-up: text-only single listings
   (concurrency 8); single listings with one inline base64 1000x1000 JPEG (concurrency 8);
   batches of 100 such listings (concurrency 4); batches of 100 text-only listings (concurrency
   2). Requests in flight at the deadline are waited for and counted.
5. Prints per workload: requests, verdicts, listings/s, latency percentiles of the 200 answers,
   failed requests, the ratio to the naive pipeline, listings per CPU-second of the server, and
   the CPU cores used by the server, by this client and by the rest of the machine (it is
   shared: read the figures against that column). Then checks (idempotency hits, reference
   copies matched), the first error body, and the targets. The server log of the last run is
   kept in ``$TMPDIR/fakeguard-bench-server.log``.

Everything is synthetic. Listing texts come from ``training.text_corpus`` (seed 1234). Listing
images are a pool of 300 generated 1000x1000 JPEGs (quality 80, ~190 KB), 10% of them transformed
copies of references (cropped, rescaled, brightness changed, re-encoded). Every listing has a
unique id and unique image bytes: a JPEG comment segment carrying a counter follows the JFIF
header, so pixels repeat across the pool but content hashes, blobs and idempotency keys do not.
Request bodies are assembled from pre-encoded parts, so the client does little work per request.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import itertools
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageEnhance

REPO = Path(__file__).resolve().parents[1]
POOL_IMAGES = 300
COPY_SHARE = 0.10
LISTING_TEXTS = 2000
QUERY_SIDE = 1000
REFERENCE_SIDE = 800
UPLOAD_BATCH = 50
BATCH_LISTINGS = 100
NAIVE_DISTANCE = 10
REQUEST_TIMEOUT = 120.0
KEPT_LOG = Path(tempfile.gettempdir()) / "fakeguard-bench-server.log"  # the last run's
MAX_TRANSPORT_ERRORS = 50  # a workload stops early after this many connection failures


# --- synthetic images ---------------------------------------------------------------------------


class Painter:
    """Photograph-like synthetic images: a smooth colour field, random shapes and fine grain.

    The field and the grain are made once; each image is a random crop of both plus its own
    shapes, which is what makes the 64-bit DCT hashes of two images far apart.
    """

    CANVAS = 2400
    GRAIN = 1200

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        colours = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        self.canvas = Image.fromarray(colours).resize(
            (self.CANVAS, self.CANVAS), Image.Resampling.BILINEAR
        )
        grain = rng.integers(116, 141, (self.GRAIN, self.GRAIN), dtype=np.uint8)
        self.grain = Image.fromarray(grain).convert("RGB")

    def paint(self, seed: int, side: int) -> Image.Image:
        rng = np.random.default_rng(seed)
        x, y = (int(v) for v in rng.integers(0, self.CANVAS - side, 2))
        img = self.canvas.crop((x, y, x + side, y + side))
        draw = ImageDraw.Draw(img)
        for _ in range(12):
            x0, y0 = (int(v) for v in rng.integers(0, side - 50, 2))
            w, h = (int(v) for v in rng.integers(40, side // 2, 2))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
            shape([x0, y0, x0 + w, y0 + h], fill=fill)
        gx, gy = (int(v) for v in rng.integers(0, self.GRAIN - side + 1, 2))
        grain = self.grain.crop((gx, gy, gx + side, gy + side))
        return ImageChops.add(img, grain, offset=-128)


def jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def transformed_copy(ref: Image.Image, rng: np.random.Generator, side: int) -> Image.Image:
    """What a counterfeiter does to an official photo: crop, rescale, brighten or darken."""
    w, h = ref.size
    f = float(rng.uniform(0.85, 0.95))
    cw, ch = int(w * f), int(h * f)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = ref.crop((x0, y0, x0 + cw, y0 + ch)).resize((side, side), Image.Resampling.BICUBIC)
    return ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.9, 1.1)))


@dataclass(frozen=True)
class TaggedJpeg:
    """A JPEG whose bytes differ per use: a comment segment with a counter after the header.

    The header plus the comment is a multiple of 3 bytes long, so the base64 of the rest of the
    file is computed once and each use only encodes a few dozen bytes.
    """

    head: bytes
    tag_len: int
    rest: bytes
    rest_b64: bytes

    @classmethod
    def of(cls, data: bytes) -> TaggedJpeg:
        if data[:2] != b"\xff\xd8":
            raise ValueError("not a JPEG")
        cut = 2
        if data[2:4] == b"\xff\xe0":  # JFIF APP0 stays first
            cut = 4 + int.from_bytes(data[4:6], "big")
        tag_len = 16 + (-(cut + 4 + 16)) % 3
        return cls(data[:cut], tag_len, data[cut:], base64.b64encode(data[cut:]))

    def segment(self, n: int) -> bytes:
        tag = f"{n:0{self.tag_len}d}".encode()
        return self.head + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag

    def head_b64(self, n: int) -> bytes:
        return base64.b64encode(self.segment(n))

    def data(self, n: int) -> bytes:
        return self.segment(n) + self.rest


@dataclass
class Dataset:
    references: list[bytes]  # JPEG bytes, in upload order
    reference_phash: list[int]  # imagehash.phash of each (for the naive pipeline)
    pool: list[TaggedJpeg]  # listing images
    copies: frozenset[int]  # pool indices that are transformed copies of references
    texts: list[Any]  # training.text_corpus.LabeledListing
    seconds: float


def make_dataset(n_references: int, seed: int = 7) -> Dataset:
    import imagehash

    from training.text_corpus import generate_corpus

    t0 = time.perf_counter()
    painter = Painter()
    refs: list[bytes] = []
    ref_hashes: list[int] = []
    for i in range(n_references):
        img = painter.paint(1_000_000 + i, REFERENCE_SIDE)
        refs.append(jpeg(img, 85))
        ref_hashes.append(int(str(imagehash.phash(img)), 16))
    rng = np.random.default_rng(seed)
    n_copies = round(POOL_IMAGES * COPY_SHARE)
    copy_slots = rng.choice(POOL_IMAGES, size=n_copies, replace=False)
    sources = rng.choice(n_references, size=n_copies, replace=False)
    source_of = dict(zip(copy_slots.tolist(), sources.tolist(), strict=True))
    pool: list[TaggedJpeg] = []
    for k in range(POOL_IMAGES):
        if k in source_of:
            ref = painter.paint(1_000_000 + source_of[k], REFERENCE_SIDE)
            img = transformed_copy(ref, rng, QUERY_SIDE)
        else:
            img = painter.paint(2_000_000 + k, QUERY_SIDE)
        pool.append(TaggedJpeg.of(jpeg(img, 80)))
    texts = generate_corpus(LISTING_TEXTS, seed=1234)
    return Dataset(refs, ref_hashes, pool, frozenset(source_of), texts, time.perf_counter() - t0)


# --- request bodies -----------------------------------------------------------------------------


def listing_fields(item: Any, index: int) -> bytes:
    """The listing's JSON members other than listing_id and images, without braces."""
    fields: dict[str, Any] = {
        "seller_id": item.seller_id or f"seller-{index}",
        "title": item.title,
        "description": item.description,
        "brand": item.brand_claimed,
        "category": item.category,
    }
    if item.price_amount and item.price_currency:
        fields["price"] = {"amount": round(item.price_amount, 2), "currency": item.price_currency}
    return json.dumps(fields, separators=(",", ":"))[1:-1].encode()


class Bodies:
    """Request bodies from pre-encoded parts; every listing gets a fresh number."""

    def __init__(self, data: Dataset, run_id: str) -> None:
        self.pool = data.pool
        self.fields = [listing_fields(t, i) for i, t in enumerate(data.texts)]
        self.run_id = run_id
        self._numbers = itertools.count()

    def listing(self, with_image: bool) -> tuple[list[bytes], int | None]:
        n = next(self._numbers)  # atomic under the GIL
        parts = [
            b'{"listing_id":"',
            f"{self.run_id}-{n:09d}".encode(),
            b'",',
            self.fields[n % len(self.fields)],
        ]
        if not with_image:
            parts.append(b"}")
            return parts, None
        k = n % len(self.pool)
        img = self.pool[k]
        parts += [b',"images":[{"data":"', img.head_b64(n), img.rest_b64, b'"}]}']
        return parts, k

    def single(self, with_image: bool) -> tuple[bytes, list[int | None]]:
        parts, k = self.listing(with_image)
        return b"".join(parts), [k]

    def batch(self, with_image: bool, size: int) -> tuple[bytes, list[int | None]]:
        parts: list[bytes] = [b'{"listings":[']
        kinds: list[int | None] = []
        for i in range(size):
            if i:
                parts.append(b",")
            listing, k = self.listing(with_image)
            parts += listing
            kinds.append(k)
        parts.append(b"]}")
        return b"".join(parts), kinds


# --- CPU accounting (Linux /proc; zeros elsewhere) ----------------------------------------------

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group."""
    total = 0
    for pid in group_pids(pgid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def machine_busy() -> float:
    """CPU seconds all processes have spent busy since boot (every core)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0
    ticks = [int(v) for v in first[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK  # minus idle and iowait


def self_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


@dataclass
class CpuUse:
    server: float  # cores (CPU seconds per second)
    client: float
    others: float


class CpuMeter:
    def __init__(self, server_pgid: int) -> None:
        self.pgid = server_pgid

    def sample(self) -> tuple[float, float, float, float]:
        return time.monotonic(), group_cpu(self.pgid), self_cpu(), machine_busy()

    @staticmethod
    def use(start: tuple[float, ...], end: tuple[float, ...]) -> CpuUse:
        wall = max(end[0] - start[0], 1e-9)
        server, client, busy = ((end[i] - start[i]) / wall for i in (1, 2, 3))
        return CpuUse(server, client, max(busy - server - client, 0.0))


# --- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def copy_active_model(target: Path) -> str | None:
    """Copy ./models' active text model (and the registry) into ``target``; its version."""
    from detector.artifacts import ArtifactError, active_version, text_dir

    source = REPO / "models"
    try:
        version = active_version(source)
    except (ArtifactError, OSError, ValueError):
        return None
    if version is None or not (text_dir(source) / version).is_dir():
        return None
    shutil.copytree(text_dir(source) / version, text_dir(target) / version)
    shutil.copy2(text_dir(source) / "registry.json", text_dir(target) / "registry.json")
    return version


@contextlib.contextmanager
def postgres_database(url: str) -> Iterator[str]:
    """A fresh database on the server ``url`` names (``url``'s database is used to create it)."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(url).set(drivername="postgresql")
    admin = base.set(database=base.database or "postgres").render_as_string(hide_password=False)
    name = f"fakeguard_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ServerStartError(RuntimeError):
    pass


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    log_path: Path
    failed_starts: list[str]


@contextlib.contextmanager
def running_server(
    tmp: Path,
    port: int,
    workers: int,
    admin_key: str,
    database_url: str | None,
    log_level: str,
    settings: dict[str, str] | None = None,
) -> Iterator[Server]:
    """``fakeguard serve`` in its own process group; killed (the whole group) on the way out.

    A start is good when /readyz answers and, 3 s later, the parent and all ``workers`` worker
    processes are still alive (uvicorn stops everything when one worker fails its startup).
    A failed start is retried twice with the same data and reported.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKEGUARD_")}
    env.update(
        FAKEGUARD_DATA_DIR=str(tmp / "data"),
        FAKEGUARD_MODELS_DIR=str(tmp / "models"),
        FAKEGUARD_BOOTSTRAP_ADMIN_KEY=admin_key,
    )
    if database_url:
        env["FAKEGUARD_DATABASE_URL"] = database_url
    env.update({f"FAKEGUARD_{name.upper()}": value for name, value in (settings or {}).items()})
    exe = shutil.which("fakeguard")
    cmd = [exe] if exe else [sys.executable, "-m", "cli"]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    cmd += ["--log-level", log_level]
    failed: list[str] = []
    for attempt in range(3):
        log_path = tmp / f"server-{attempt}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_ready(proc, f"http://127.0.0.1:{port}", log_path, timeout=240.0)
            time.sleep(3.0)
            alive = len(worker_pids(proc.pid))
            expected = workers if workers > 1 else 0  # one worker: uvicorn serves in-process
            if proc.poll() is not None or alive != expected:
                raise ServerStartError(f"{alive} of {expected} workers alive after /readyz")
        except ServerStartError as exc:
            stop(proc)
            failed.append(f"{exc}; server log: {log_excerpt(log_path)}")
            continue
        except BaseException:
            stop(proc)
            raise
        try:
            yield Server(proc, log_path, failed)
        except BaseException:
            print(f"--- end of the server log:\n{log_path.read_text()[-4000:]}---", file=sys.stderr)
            raise
        finally:
            stop(proc)
            shutil.copy2(log_path, KEPT_LOG)
        return
    raise RuntimeError("the server did not start:\n" + "\n".join(failed))


def log_excerpt(path: Path) -> str:
    """The server log's error lines (the last few), for a one-line report."""
    lines = path.read_text(errors="replace").splitlines()
    errors = [
        line.strip()
        for line in lines
        if "Error" in line or "failed" in line or "locked" in line
        if not line.startswith(" ")
    ]
    return " | ".join(errors[-4:]) or "(no error lines)"


def group_pids(pgid: int) -> dict[int, str]:
    """Live (not zombie) processes of a process group: pid -> command line."""
    out = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
        except (OSError, ValueError, IndexError):
            continue
    return out


def worker_pids(pgid: int) -> list[int]:
    """uvicorn's worker processes (multiprocessing spawn children) in the server's group."""
    return sorted(pid for pid, cmd in group_pids(pgid).items() if "spawn_main" in cmd)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group; SIGKILL what is left of it after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20.0)
    for _ in range(50):  # while members are left, the group id cannot have been reused
        if not group_pids(proc.pid):
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10.0)


def wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerStartError(f"the server exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/readyz").status_code == 200:
                    return
            time.sleep(0.5)
    raise RuntimeError(f"the server was not ready within {timeout:.0f} s (log: {log_path})")


# --- setup over HTTP ----------------------------------------------------------------------------


def check(response: httpx.Response, expected: int) -> Any:
    if response.status_code != expected:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:500]}"
        )
    return response.json() if response.content else None


SETUP_ATTEMPTS = 8


def post_retrying(
    client: httpx.Client, path: str, expected: int, retried: list[str], **kwargs: Any
) -> Any:
    """POST; a 503 is retried after its Retry-After (at most 2 s), up to SETUP_ATTEMPTS times.

    Only for the setup, which is not measured; every retry is noted in ``retried``.
    """
    for _ in range(SETUP_ATTEMPTS - 1):
        response = client.post(path, **kwargs)
        if response.status_code != 503:
            break
        retried.append(f"POST {path}: 503 {response.text[:200]}")
        time.sleep(min(float(response.headers.get("retry-after", 1)), 2.0))
    else:
        response = client.post(path, **kwargs)
    return check(response, expected)


@dataclass
class Catalog:
    brands: list[str]
    uploaded: int
    upload_errors: list[str]
    retried: list[str]
    seconds: float


def load_references(
    url: str, admin_key: str, refs: Sequence[bytes], n_brands: int, lanes: int
) -> Catalog:
    """Brands, then the references in multipart requests of UPLOAD_BATCH, ``lanes`` at a time."""
    from training.train_text import corpus_brands

    t0 = time.perf_counter()
    headers = {"Authorization": f"Bearer {admin_key}"}
    retried: list[str] = []
    brand_ids = []
    with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT) as client:
        for name, forms in corpus_brands()[:n_brands]:
            aliases = sorted({f for f in forms if f != name})
            body = {"name": name, "aliases": aliases, "authorized_sellers": []}
            brand_ids.append(post_retrying(client, "/v1/brands", 201, retried, json=body)["id"])

    starts = list(range(0, len(refs), UPLOAD_BATCH))
    uploaded: list[int] = []
    errors: list[str] = []
    failures: list[BaseException] = []

    def uploader(lane: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT) as client:
            for start in starts[lane::lanes]:
                brand = brand_ids[(start // UPLOAD_BATCH) % len(brand_ids)]
                chunk = refs[start : start + UPLOAD_BATCH]
                files = [
                    ("files", (f"ref-{start + j}.jpg", d, "image/jpeg"))
                    for j, d in enumerate(chunk)
                ]
                try:
                    out = post_retrying(
                        client,
                        f"/v1/brands/{brand}/references",
                        201,
                        retried,
                        files=files,
                        data={"product": "bench"},
                    )
                except Exception as exc:
                    failures.append(exc)
                    return
                uploaded.append(len(out["references"]))
                errors.extend(json.dumps(e) for e in out["errors"])

    threads = [threading.Thread(target=uploader, args=(i,), daemon=True) for i in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    if failures:
        raise RuntimeError(f"reference upload failed: {failures[0]}")
    return Catalog(brand_ids, sum(uploaded), errors, retried, time.perf_counter() - t0)


def count_references(url: str, admin_key: str, brand_ids: Sequence[str]) -> int:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
        return sum(
            int(check(client.get(f"/v1/brands/{b}/references", params={"limit": 1}), 200)["total"])
            for b in brand_ids
        )


def create_key(url: str, admin_key: str, role: str) -> str:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
        body = {"role": role, "name": "bench"}
        key: str = post_retrying(client, "/v1/keys", 201, [], json=body)["key"]
        return key


# --- load generation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    path: str
    per_request: int
    concurrency: int
    with_image: bool


@dataclass
class Tally:
    """What one client thread saw. Latencies are those of the 200 answers."""

    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    listings: int = 0
    errors: int = 0  # requests without a 200 answer (HTTP status or transport error)
    transport_errors: int = 0
    item_errors: int = 0  # batch items answered with an error entry
    statuses: Counter[str] = field(default_factory=Counter)
    first_error: str | None = None
    copies_seen: int = 0
    copies_matched: int = 0
    false_matches: int = 0
    cached: int = 0
    model_version: str | None = None
    catalog_version: int | None = None
    last_done: float = 0.0

    def failed(self, kind: str, message: str) -> None:
        self.statuses[kind] += 1
        if self.first_error is None:
            self.first_error = message[:800]

    def verdicts(
        self, items: list[dict[str, Any]], kinds: list[int | None], copies: frozenset[int]
    ) -> None:
        for item, kind in zip(items, kinds, strict=True):
            if "error" in item:
                self.item_errors += 1
                self.failed(f"item {item['error']}", f"batch item: {json.dumps(item)}")
                continue
            self.listings += 1
            self.cached += bool(item.get("cached"))
            self.model_version = item.get("model_version")
            self.catalog_version = item.get("catalog_version")
            matched = bool(item.get("image_matches"))
            if kind in copies:
                self.copies_seen += 1
                self.copies_matched += matched
            elif matched:
                self.false_matches += 1

    def merge(self, other: Tally) -> None:
        self.latencies += other.latencies
        for name in (
            "requests",
            "listings",
            "errors",
            "transport_errors",
            "item_errors",
            "copies_seen",
            "copies_matched",
            "false_matches",
            "cached",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.statuses.update(other.statuses)
        self.first_error = self.first_error or other.first_error
        self.model_version = self.model_version or other.model_version
        self.catalog_version = self.catalog_version or other.catalog_version
        self.last_done = max(self.last_done, other.last_done)


@dataclass
class Outcome:
    workload: Workload
    tally: Tally
    requests: int
    elapsed: float
    cpu: CpuUse

    @property
    def rate(self) -> float:
        return self.tally.listings / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def per_server_cpu(self) -> float:
        """Listings per CPU-second of the server: what the machine's contention cannot move."""
        return self.rate / self.cpu.server if self.cpu.server > 0 else 0.0

    def pct(self, q: float) -> float:
        lat = self.tally.latencies
        return float(np.percentile(lat, q)) * 1e3 if lat else float("nan")


def drive(
    url: str,
    key: str,
    workload: Workload,
    bodies: Bodies,
    copies: frozenset[int],
    seconds: float,
    max_requests: int,
) -> tuple[Tally, int, float]:
    """``workload.concurrency`` threads send requests until ``seconds`` have passed (or
    ``max_requests`` were sent, or ``MAX_TRANSPORT_ERRORS`` connections failed); the merged
    tally, the number of requests sent and the wall time to the last answer."""
    sent = itertools.count()
    tallies = [Tally() for _ in range(workload.concurrency)]
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    start = time.monotonic()
    deadline = start + seconds

    def build() -> tuple[bytes, list[int | None]]:
        if workload.per_request == 1:
            return bodies.single(workload.with_image)
        return bodies.batch(workload.with_image, workload.per_request)

    def loop(tally: Tally) -> None:
        with httpx.Client(
            base_url=url,
            headers=headers,
            timeout=REQUEST_TIMEOUT,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        ) as client:
            while (
                time.monotonic() < deadline
                and next(sent) < max_requests
                and sum(t.transport_errors for t in tallies) < MAX_TRANSPORT_ERRORS
            ):
                body, kinds = build()
                tally.requests += 1
                t0 = time.perf_counter()
                try:
                    response = client.post(workload.path, content=body)
                except httpx.HTTPError as exc:
                    tally.errors += 1
                    tally.transport_errors += 1
                    tally.failed(type(exc).__name__, f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - t0
                tally.last_done = time.monotonic()
                if response.status_code != 200:
                    tally.errors += 1
                    tally.failed(
                        f"HTTP {response.status_code}",
                        f"HTTP {response.status_code}: {response.text}",
                    )
                    continue
                tally.latencies.append(elapsed)
                payload = response.json()
                items = payload["results"] if workload.per_request > 1 else [payload]
                tally.verdicts(items, kinds, copies)

    threads = [threading.Thread(target=loop, args=(t,), daemon=True) for t in tallies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + REQUEST_TIMEOUT + 30)
    merged = Tally()
    for t in tallies:
        merged.merge(t)
    elapsed = (merged.last_done or time.monotonic()) - start
    return merged, merged.requests, elapsed


def run_workload(
    url: str,
    key: str,
    workload: Workload,
    bodies: Bodies,
    copies: frozenset[int],
    seconds: float,
    meter: CpuMeter,
) -> Outcome:
    before = meter.sample()
    tally, requests, elapsed = drive(url, key, workload, bodies, copies, seconds, 1_000_000)
    cpu = CpuMeter.use(before, meter.sample())
    return Outcome(workload, tally, requests, elapsed, cpu)


def warm_up(url: str, key: str, bodies: Bodies, copies: frozenset[int]) -> None:
    """Text model, reference views, connection pools: a few listings of each kind, not counted."""
    for with_image in (False, True):
        w = Workload("warm-up", "/v1/listings/score", 1, 4, with_image)
        drive(url, key, w, bodies, copies, 3.0, 16)


# --- the naive pipeline -------------------------------------------------------------------------


class NaivePipeline:
    """What one would write first: decode everything, phash, loop, TF-IDF + logistic regression."""

    def __init__(self, reference_hashes: Sequence[int]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        from training.text_corpus import generate_corpus

        train = generate_corpus(3000)
        self.text = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))
        self.text.fit([f"{t.title} {t.description}" for t in train], [t.label for t in train])
        self.references = list(reference_hashes)

    def score(self, text: str, image: bytes | None) -> tuple[float, int]:
        import imagehash

        p = float(self.text.predict_proba([text])[0, 1])
        hits = 0
        if image is not None:
            with Image.open(io.BytesIO(image)) as img:
                h = int(str(imagehash.phash(img)), 16)
            hits = sum(1 for r in self.references if (h ^ r).bit_count() <= NAIVE_DISTANCE)
            if hits:
                p = max(p, 0.9)
        return p, hits


@dataclass
class NaiveResult:
    listings: int
    rate: float
    copies_matched: int = 0
    copies_seen: int = 0


def run_naive(naive: NaivePipeline, data: Dataset, with_image: bool, seconds: float) -> NaiveResult:
    """Score the HTTP workloads' listings one by one on this thread, for at most ``seconds``."""
    texts = [f"{t.title} {t.description}" for t in data.texts]
    limit = len(data.pool) if with_image else len(texts)
    naive.score(texts[0], data.pool[0].data(0) if with_image else None)  # warm up
    done = matched = seen = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    for n in range(limit):
        if time.perf_counter() >= deadline:
            break
        k = n % len(data.pool)
        image = data.pool[k].data(n) if with_image else None
        _, hits = naive.score(texts[n % len(texts)], image)
        done += 1
        if with_image and k in data.copies:
            seen += 1
            matched += hits > 0
    return NaiveResult(done, done / (time.perf_counter() - t0), matched, seen)


# --- report -------------------------------------------------------------------------------------


def code_version() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = [line[3:] for line in git("status", "--porcelain", "-uno").splitlines()]
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    served = [p for p in dirty if p.split("/")[0] in ("api", "detector", "store", "cli")]
    if not served:
        return f"commit {head}"
    return f"commit {head} + uncommitted changes in {', '.join(served)}"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def print_table(outcomes: Sequence[Outcome], naive: dict[bool, NaiveResult]) -> None:
    head = (
        f"{'workload':<36} {'conc':>4} {'requests':>8} {'listings':>8} {'listings/s':>10} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6} {'vs naive':>8} "
        f"{'per srv CPU-s':>13}  {'CPU cores: server/client/others':>31}"
    )
    print(head)
    print("-" * len(head))
    for o in outcomes:
        w = o.workload
        base = naive[w.with_image].rate
        ratio = f"x{o.rate / base:.2f}" if base else "-"
        cpu = f"{o.cpu.server:.2f} / {o.cpu.client:.2f} / {o.cpu.others:.2f}"
        print(
            f"{w.name:<36} {w.concurrency:>4} {o.requests:>8} {o.tally.listings:>8} "
            f"{o.rate:>10.1f} {o.pct(50):>8.1f} {o.pct(95):>8.1f} {o.pct(99):>8.1f} "
            f"{o.tally.errors:>6} {ratio:>8} {o.per_server_cpu:>13.1f}  {cpu:>31}"
        )
    for label, with_image in (("text only", False), ("1000x1000 JPEG", True)):
        r = naive[with_image]
        print(
            f"{'naive, in-process, ' + label:<36} {1:>4} {'-':>8} {r.listings:>8} "
            f"{r.rate:>10.1f} {1e3 / r.rate if r.rate else 0:>8.1f} {'':>8} {'':>8} {0:>6} "
            f"{'x1':>8} {r.rate:>13.1f}  {'1 thread':>31}"
        )
    print(
        "listings/s count verdicts only (200 answers, batch items without an error); latencies "
        "are per request (200 answers); naive p50 = mean ms per listing; 'per srv CPU-s' = "
        "listings/s divided by the server's CPU cores in use"
    )


def print_checks(outcomes: Sequence[Outcome], naive: dict[bool, NaiveResult]) -> None:
    for o in outcomes:
        t = o.tally
        failures = ", ".join(f"{n} x {kind}" for kind, n in t.statuses.most_common()) or "none"
        line = f"  {o.workload.name}: failures {failures}; {t.cached} cached verdicts (must be 0)"
        if o.workload.with_image:
            line += (
                f"; reference copies matched {t.copies_matched}/{t.copies_seen}, "
                f"other listings with an image match {t.false_matches}"
            )
        print(line)
        if t.first_error:
            print(f"    first error: {t.first_error}")
    r = naive[True]
    print(
        f"  naive with image: reference copies with a phash hit {r.copies_matched}/{r.copies_seen}"
    )


def print_targets(outcomes: Sequence[Outcome], naive: dict[bool, NaiveResult]) -> None:
    by_name = {o.workload.name: o for o in outcomes}
    if any(w.name not in by_name for w in (SINGLE_TEXT, SINGLE_IMAGE, BATCH_IMAGE, BATCH_TEXT)):
        print("  (judged only when every workload ran)")
        return
    batch, single = by_name[BATCH_IMAGE.name], by_name[SINGLE_IMAGE.name]
    text = by_name[SINGLE_TEXT.name]
    text_batch = by_name[BATCH_TEXT.name]
    base = naive[True].rate
    rows = [
        (
            "batches, one 1000x1000 JPEG each >= 400 listings/s",
            batch.rate >= 400,
            f"{batch.rate:.0f}",
        ),
        (
            "text-only >= 1500 listings/s (single / batch)",
            max(text.rate, text_batch.rate) >= 1500,
            f"{text.rate:.0f} / {text_batch.rate:.0f}",
        ),
        (
            "single-listing p99 <= 50 ms at concurrency 8 (text / image)",
            max(text.pct(99), single.pct(99)) <= 50,
            f"{text.pct(99):.1f} / {single.pct(99):.1f} ms",
        ),
        (
            ">= 3x naive listings/s with images (single / batch)",
            base > 0 and min(single.rate, batch.rate) >= 3 * base,
            f"x{single.rate / base:.1f} / x{batch.rate / base:.1f}" if base else "-",
        ),
        (
            "no errors (failed requests + failed batch items)",
            all(o.tally.errors + o.tally.item_errors == 0 for o in outcomes),
            str(sum(o.tally.errors + o.tally.item_errors for o in outcomes)),
        ),
    ]
    for label, ok, value in rows:
        print(f"  [{'met ' if ok else 'MISS'}] {label}: {value}")


SINGLE_TEXT = Workload("single, text only", "/v1/listings/score", 1, 8, False)
SINGLE_IMAGE = Workload("single, one 1000x1000 JPEG", "/v1/listings/score", 1, 8, True)
BATCH_IMAGE = Workload(
    f"batch of {BATCH_LISTINGS}, one JPEG each", "/v1/listings/score-batch", BATCH_LISTINGS, 4, True
)
BATCH_TEXT = Workload(
    f"batch of {BATCH_LISTINGS}, text only", "/v1/listings/score-batch", BATCH_LISTINGS, 2, False
)


#: ``--workload`` names -> the workloads they run
WORKLOAD_NAMES = {
    "single-text": SINGLE_TEXT.name,
    "single-image": SINGLE_IMAGE.name,
    "batch-image": BATCH_IMAGE.name,
    "batch-text": BATCH_TEXT.name,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per workload")
    parser.add_argument("--references", type=int, default=1000)
    parser.add_argument("--brands", type=int, default=4)
    parser.add_argument(
        "--database",
        default="sqlite",
        help="'sqlite' (in the temp dir) or a PostgreSQL URL whose server gets a fresh database",
    )
    parser.add_argument("--batch-concurrency", type=int, default=BATCH_IMAGE.concurrency)
    parser.add_argument("--naive-seconds", type=float, default=10.0, help="per naive run")
    parser.add_argument(
        "--server-log-level", default="warning", help="uvicorn log level (info logs each request)"
    )
    parser.add_argument(
        "--server-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting (FAKEGUARD_NAME) for paired runs, e.g. score_coalescing=false",
    )
    parser.add_argument(
        "--workload",
        action="append",
        choices=sorted(WORKLOAD_NAMES),
        help="run only this workload (repeatable; default: all four, and the targets are judged)",
    )
    args = parser.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.server_setting if "=" in item)
    if len(settings) != len(args.server_setting):
        parser.error("--server-setting takes NAME=VALUE")
    if not 1 <= args.seconds <= 120:
        parser.error("--seconds must be between 1 and 120")
    workloads = [
        SINGLE_TEXT,
        SINGLE_IMAGE,
        Workload(
            BATCH_IMAGE.name,
            BATCH_IMAGE.path,
            BATCH_IMAGE.per_request,
            args.batch_concurrency,
            True,
        ),
        BATCH_TEXT,
    ]
    if args.workload:
        wanted = {WORKLOAD_NAMES[name] for name in args.workload}
        workloads = [w for w in workloads if w.name in wanted]

    print(f"machine: {os.cpu_count()} CPUs, load average {loadavg()}; code: {code_version()}")
    data = make_dataset(args.references)
    mean_kb = statistics.mean(len(p.rest) for p in data.pool) / 1024
    ref_kb = statistics.mean(map(len, data.references)) / 1024
    print(
        f"synthetic data ({data.seconds:.0f} s): {len(data.references)} reference JPEGs "
        f"{REFERENCE_SIDE}x{REFERENCE_SIDE} (mean {ref_kb:.0f} KB); {len(data.pool)} listing JPEGs "
        f"{QUERY_SIDE}x{QUERY_SIDE} (mean {mean_kb:.0f} KB, {len(data.copies)} transformed copies "
        f"of references), bytes made unique per listing; {len(data.texts)} listing texts"
    )

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        naive_pipeline = NaivePipeline(data.reference_phash)
        naive = {
            False: run_naive(naive_pipeline, data, False, args.naive_seconds),
            True: run_naive(naive_pipeline, data, True, args.naive_seconds),
        }
    del naive_pipeline
    print(
        f"naive pipeline (measured now, before the server starts; 1 thread, one listing at a "
        f"time): Pillow full decode + imagehash.phash + Python loop over {len(data.references)} "
        f"reference phashes (Hamming <= {NAIVE_DISTANCE}) + TF-IDF/LogisticRegression fitted on "
        f"generate_corpus(3000): {naive[False].rate:.0f} listings/s text only, "
        f"{naive[True].rate:.0f} listings/s with the image"
    )

    admin_key = generate_admin_key()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fg-bench-")))
        copied = copy_active_model(tmp / "models")
        if args.database == "sqlite":
            database_url, shown_db = None, "SQLite (temp dir, WAL)"
        else:
            database_url = stack.enter_context(postgres_database(args.database))
            shown_db = f"PostgreSQL {safe_url(database_url)} (fresh, dropped at the end)"
        t0 = time.perf_counter()
        server = stack.enter_context(
            running_server(
                tmp, port, args.workers, admin_key, database_url, args.server_log_level, settings
            )
        )
        started = time.perf_counter() - t0
        for failure in server.failed_starts:
            print(f"server start FAILED, retried: {failure}")
        # SQLite: one upload at a time (two concurrent uploads fail with "database is locked")
        lanes = 1 if database_url is None else 2
        catalog = load_references(url, admin_key, data.references, args.brands, lanes)
        ingest_key = create_key(url, admin_key, "ingest")
        time.sleep(4.0)  # other workers pick catalog changes up within catalog_refresh_seconds (2)
        n_refs = count_references(url, admin_key, catalog.brands)
        print(
            f"server ready in {started:.1f} s; uploaded {catalog.uploaded} references in "
            f"{catalog.seconds:.1f} s ({catalog.uploaded / catalog.seconds:.0f}/s, {lanes} "
            f"request(s) of {UPLOAD_BATCH} at a time, {len(catalog.upload_errors)} rejected)"
        )
        for err in catalog.upload_errors[:3]:
            print(f"  upload error: {err}")
        if catalog.retried:
            print(
                f"  setup requests retried after a 503: {len(catalog.retried)}; first: "
                f"{catalog.retried[0]}"
            )
        bodies = Bodies(data, secrets.token_hex(4))
        meter = CpuMeter(server.proc.pid)
        warm_up(url, ingest_key, bodies, data.copies)
        outcomes = []
        for w in workloads:
            outcomes.append(
                run_workload(url, ingest_key, w, bodies, data.copies, args.seconds, meter)
            )
            print(f"  measured {w.name}: {outcomes[-1].rate:.1f} listings/s", flush=True)

        alive = len(worker_pids(server.proc.pid))
        version = next((o.tally.model_version for o in outcomes if o.tally.model_version), None)
        catalog_version = next(
            (o.tally.catalog_version for o in outcomes if o.tally.catalog_version), None
        )
        print()
        print(
            f"server: fakeguard serve --workers {args.workers} (log level "
            f"{args.server_log_level}{''.join(f', {k}={v}' for k, v in settings.items())}), "
            f"{shown_db}; {n_refs} references in {len(catalog.brands)} "
            f"brands; text model {version} "
            f"({'copied from ./models' if copied else 'built by the server'}); "
            f"catalog version {catalog_version}; image threads per worker: default "
            f"({os.cpu_count()}); worker processes alive at the end: {alive}"
        )
        print(
            f"client: httpx, one thread + one keep-alive connection per concurrent request, "
            f"{args.seconds:.0f} s per workload after a warm-up; load average now {loadavg()}"
        )
        print()
        print_table(outcomes, naive)
        print()
        print("checks:")
        print_checks(outcomes, naive)
        print(f"server log (errors and tracebacks): {KEPT_LOG}")
        print("targets (2 cores, 1,000 references):")
        print_targets(outcomes, naive)
    return 0 if all(o.tally.errors + o.tally.item_errors == 0 for o in outcomes) else 1


def generate_admin_key() -> str:
    from store.keys import generate_key

    return generate_key()


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())

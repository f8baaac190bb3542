"""``fakeguard serve`` as a subprocess on a free loopback port, for tests that need the real
server (its own process group, so a test can SIGKILL it or one of its workers)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.bench_scoring import group_pids, worker_pids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pid_of_local_port(port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` owns the TCP socket bound to local ``port`` (via /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        return pid
    return None


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    env: dict[str, str] = field(repr=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole server (supervisor and workers) at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
        for _ in range(50):
            if not group_pids(self.proc.pid):
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def serve(
    tmp: Path,
    *,
    database_url: str,
    models_dir: Path,
    admin_key: str,
    workers: int = 1,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = 90.0,
) -> Served:
    """Start ``fakeguard serve`` (migrations already run: ``--no-migrate``); wait for /readyz."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKEGUARD_")}
    env.update(
        FAKEGUARD_DATA_DIR=str(tmp / "data"),
        FAKEGUARD_DATABASE_URL=database_url,
        FAKEGUARD_MODELS_DIR=str(models_dir),
        FAKEGUARD_BOOTSTRAP_ADMIN_KEY=admin_key,
        FAKEGUARD_LOG_LEVEL="WARNING",
        **(extra_env or {}),
    )
    port = port or free_port()
    exe = shutil.which("fakeguard")
    cmd = [exe] if exe else [sys.executable, "-m", "cli"]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    cmd += ["--no-migrate", "--no-default-model", "--log-level", "warning"]
    log_path = tmp / f"server-{port}-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    served = Served(proc, f"http://127.0.0.1:{port}", log_path, env)
    try:
        wait_ready(served, timeout, workers=workers)
    except BaseException:
        served.stop()
        raise
    return served


def wait_ready(served: Served, timeout: float = 90.0, *, workers: int = 1) -> None:
    """/readyz answers 200 (and, with several workers, all of them are up)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=served.url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if served.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {served.log()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/readyz").status_code == 200 and (
                    workers == 1 or len(worker_pids(served.proc.pid)) == workers
                ):
                    return
            time.sleep(0.2)
    raise RuntimeError(f"the server was not ready within {timeout:.0f} s: {served.log()[-3000:]}")


def call(served: Served, method: str, path: str, key: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return httpx.request(method, served.url + path, headers=headers, timeout=120, **kw)

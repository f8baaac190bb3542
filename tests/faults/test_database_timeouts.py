"""The PostgreSQL client never waits without bound (FAKEGUARD_DB_* timeouts).

A database that accepts the TCP connection and never answers (a stalled host) and a statement
that waits on a lock are both answered 503 with ``Retry-After`` in the one error shape, within
the configured bounds (asserted loosely: the machine is shared), instead of hanging the request.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, event, text

from api.app import create_app
from api.settings import Settings
from tests.api.conftest import ADMIN_KEY, make_settings
from tests.faults.conftest import count_rows
from tests.faults.test_database_outage import assert_unavailable
from tests.support.images import product_photo

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("psycopg") is None, reason="the PostgreSQL driver is not installed"
)


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never sends a byte."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def within(seconds: float, call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    """``call()`` in a thread; fails (instead of hanging the suite) if it has not returned."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        t0 = time.monotonic()
        outcome["response"] = call()
        outcome["seconds"] = time.monotonic() - t0

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=seconds)
    assert not thread.is_alive(), f"the request did not return within {seconds} s"
    return outcome["response"], outcome["seconds"]


def test_database_that_accepts_and_never_answers_gives_503(tmp_path: Path) -> None:
    with silent_server() as port:
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=f"postgresql://fakeguard@127.0.0.1:{port}/fakeguard",
            models_dir=tmp_path / "no-models",
            db_connect_timeout_seconds=2,
        )
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            asked = driver_parameters(client.app.state.ctx.engine)  # type: ignore[attr-defined]
            listing = {"listing_id": "T-1", "seller_id": "s", "title": "Bag"}
            headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
            r, seconds = within(
                60, lambda: client.post("/v1/listings/score", json=listing, headers=headers)
            )
            assert_unavailable(r)
            assert seconds < 30, seconds  # 2 s configured; loose on a loaded machine
            assert asked and asked[-1]["connect_timeout"] == 2, asked
            assert asked[-1]["keepalives"] == 1 and asked[-1]["tcp_user_timeout"] > 0, asked
            assert asked[-1]["options"] == "-c statement_timeout=30000", asked  # the default
            r, _ = within(60, lambda: client.get("/readyz"))
            assert_unavailable(r)


def driver_parameters(engine: Engine) -> list[dict[str, Any]]:
    """The parameters the engine gives the driver, one dict per connection attempt."""
    seen: list[dict[str, Any]] = []

    @event.listens_for(engine, "do_connect")
    def _record(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        seen.append(dict(params))

    return seen


def test_timeouts_in_the_url_win(tmp_path: Path) -> None:
    with silent_server() as port:
        url = f"postgresql://fakeguard@127.0.0.1:{port}/fakeguard?connect_timeout=2"
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=url + "&options=-c%20statement_timeout%3D5000",
            models_dir=tmp_path / "no-models",
            db_connect_timeout_seconds=60,
        )
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            asked = driver_parameters(client.app.state.ctx.engine)  # type: ignore[attr-defined]
            r, _ = within(60, lambda: client.get("/readyz"))
            assert_unavailable(r)
    assert asked[-1]["connect_timeout"] == "2", asked
    assert asked[-1]["options"] == "-c statement_timeout=5000", asked
    assert asked[-1]["keepalives"] == 1, asked


@contextlib.contextmanager
def table_locked(url: str, table: str) -> Iterator[None]:
    """``table`` held ACCESS EXCLUSIVE by another session: every statement on it waits."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            try:
                yield
            finally:
                conn.rollback()
    finally:
        engine.dispose()


@pytest.fixture
def client(pg_url: str, tmp_path: Path, models_dir: Path) -> Iterator[TestClient]:
    settings = make_settings(
        pg_url, tmp_path, models_dir=models_dir, db_statement_timeout_seconds=1
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_statement_waiting_on_a_lock_is_cancelled_with_503(client: TestClient, pg_url: str) -> None:
    engine = client.app.state.ctx.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "1s"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    r = client.post("/v1/keys", json={"role": "ingest"}, headers=admin)
    ingest = {"Authorization": f"Bearer {r.json()['key']}"}
    listing = {
        "listing_id": "LOCKED-1",
        "seller_id": "s",
        "title": "Replica bag 1:1",
        "images": [{"data": base64.b64encode(product_photo(950, 300)).decode()}],
    }
    before = count_rows(pg_url)
    with table_locked(pg_url, "listings"):
        r, seconds = within(
            60, lambda: client.post("/v1/listings/score", json=listing, headers=ingest)
        )
        assert_unavailable(r)
        assert seconds < 30, seconds  # 1 s configured; loose on a loaded machine
    assert count_rows(pg_url) == before
    r = client.post("/v1/listings/score", json=listing, headers=ingest)
    assert r.status_code == 200 and r.json()["cached"] is False, r.text

"""A worker killed with SIGKILL in the middle of a batch.

The real server (``fakeguard serve``) runs in a subprocess against the test database. The batch
is written in one transaction, so a kill leaves all of it or none of it; the retried request
(on the worker uvicorn starts in the dead one's place, or on a restarted server) is answered
from what is stored, idempotently on the listing content.
"""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from store.keys import generate_key
from tests.faults.conftest import count_rows
from tests.support.images import product_photo
from tests.support.server import Served, call, pid_of_local_port, serve, wait_ready, worker_pids

BATCH = 40


def batch_body(tag: str, n: int = BATCH) -> dict[str, Any]:
    listings = []
    for i in range(n):
        body: dict[str, Any] = {
            "listing_id": f"{tag}-{i}",
            "seller_id": f"seller-{i % 7}",
            "title": (
                f"AAA replica designer handbag 1:1 mirror copy #{i}"
                if i % 2
                else f"Leather tote bag, lightly used #{i}"
            ),
            "price": {"amount": 30 + i, "currency": "USD"},
        }
        if i % 3 == 0:
            body["images"] = [{"data": base64.b64encode(product_photo(500 + i, 320)).decode()}]
        listings.append(body)
    return {"listings": listings}


def ingest_key(served: Served, admin: str) -> str:
    r = call(served, "POST", "/v1/keys", admin, json={"role": "ingest"})
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


def post_in_thread(served: Served, key: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST the batch from a thread; the outcome (response or transport error) lands in the dict."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["response"] = call(served, "POST", "/v1/listings/score-batch", key, json=body)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def check_retry(
    served: Served, key: str, body: dict[str, Any], url: str, base: dict[str, int]
) -> None:
    """The retried batch answers in full; once more answers the same verdicts from the store."""
    r = call(served, "POST", "/v1/listings/score-batch", key, json=body)
    assert r.status_code == 200, r.text
    first = r.json()["results"]
    assert len(first) == len(body["listings"]) and all("verdict_id" in v for v in first), first
    r = call(served, "POST", "/v1/listings/score-batch", key, json=body)
    again = r.json()["results"]
    assert [v["cached"] for v in again] == [True] * len(again)
    keys = ("verdict_id", "score", "decision", "model_version")
    assert [[v[k] for k in keys] for v in again] == [[v[k] for k in keys] for v in first]
    after = count_rows(url)
    n = len(body["listings"])
    flagged = sum(1 for v in first if v["decision"] != "allow")
    assert after["listings"] - base["listings"] == n
    assert after["listing_versions"] - base["listing_versions"] == n  # one version each
    assert after["verdicts"] - base["verdicts"] == n
    assert after["review_items"] - base["review_items"] == flagged


def test_worker_killed_inside_the_batch_transaction(
    pg_url: str, models_dir: Path, tmp_path: Path
) -> None:
    """PostgreSQL: the worker is killed while its batch transaction is open and has written rows.

    The test holds ``LOCK TABLE verdicts IN SHARE MODE`` (reads pass, inserts wait), so the
    worker stops inside its transaction right after writing the listings and their versions,
    at the verdicts insert; it is killed there.
    """
    admin = generate_key()
    served = serve(tmp_path, database_url=pg_url, models_dir=models_dir, admin_key=admin, workers=2)
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        key = ingest_key(served, admin)
        body = batch_body("KILL")
        base = count_rows(pg_url)
        with engine.connect() as locker:
            locker.execute(text("BEGIN"))
            locker.execute(text("LOCK TABLE verdicts IN SHARE MODE"))
            outcome = post_in_thread(served, key, body)
            waiting = None
            deadline = time.monotonic() + 60
            with engine.connect() as watcher:
                while waiting is None and time.monotonic() < deadline:
                    waiting = watcher.execute(
                        text(
                            "SELECT pid, client_port, backend_xid IS NOT NULL AS wrote "
                            "FROM pg_stat_activity WHERE datname = current_database() "
                            "AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO verdicts%'"
                        )
                    ).first()
                    time.sleep(0.05)
            assert waiting is not None, "the batch never reached its verdicts insert"
            assert waiting.wrote  # listings and versions are written in the open transaction
            victim = pid_of_local_port(waiting.client_port, worker_pids(served.proc.pid))
            assert victim is not None
            os.kill(victim, signal.SIGKILL)
            outcome["thread"].join(timeout=30)
            assert "error" in outcome or outcome["response"].status_code >= 500, outcome
            locker.execute(text("ROLLBACK"))
        # the killed worker's backend sees its client gone and rolls back
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                alive = conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                    {"p": waiting.pid},
                ).scalar_one()
            if not alive:
                break
            time.sleep(0.1)
        assert count_rows(pg_url) == base  # none of the batch
        wait_ready(served, workers=2)  # uvicorn started a worker in the killed one's place
        assert victim not in worker_pids(served.proc.pid)
        check_retry(served, key, body, pg_url, base)
    finally:
        engine.dispose()
        served.stop()


def test_server_killed_inside_the_batch_transaction_sqlite(
    tmp_path: Path, models_dir: Path
) -> None:
    """SQLite: the server is killed while its batch transaction holds the write lock and has
    written rows (a trigger makes each verdict insert slow, so the transaction stays open)."""
    from store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'killed.db'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE slow_rows (n INTEGER)"))
        conn.execute(text("INSERT INTO slow_rows VALUES " + ",".join(["(1)"] * 1500)))
        conn.execute(
            text(
                "CREATE TRIGGER slow_verdicts BEFORE INSERT ON verdicts BEGIN "
                "SELECT count(*) FROM slow_rows a, slow_rows b; END"
            )
        )
    admin = generate_key()
    served = serve(tmp_path, database_url=url, models_dir=models_dir, admin_key=admin)
    try:
        key = ingest_key(served, admin)
        body = batch_body("SQLK")
        base = count_rows(url)
        outcome = post_in_thread(served, key, body)
        probe = sqlite3.connect(str(tmp_path / "killed.db"), timeout=0, isolation_level=None)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            except sqlite3.OperationalError:  # locked: the server is inside its write
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the batch never started writing")
        time.sleep(0.3)  # listings and versions written; inside the slow verdicts insert
        assert outcome["thread"].is_alive()
        served.kill()
        outcome["thread"].join(timeout=30)
        assert "error" in outcome, outcome
        probe.close()
    finally:
        served.stop()
    assert count_rows(url) == base  # none of the batch
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER slow_verdicts"))
    engine.dispose()
    served = serve(tmp_path, database_url=url, models_dir=models_dir, admin_key=admin)
    try:
        check_retry(served, key, body, url, base)
    finally:
        served.stop()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5, 2.5, 4.0])
def test_server_killed_at_any_moment_of_a_batch(
    db_url: str, models_dir: Path, tmp_path: Path, delay: float
) -> None:
    """SQLite and PostgreSQL: the whole server killed ``delay`` s into a batch, whatever it was
    doing then; all of the batch is stored or none of it, and the retry on a restarted server
    answers in full."""
    admin = generate_key()
    served = serve(tmp_path, database_url=db_url, models_dir=models_dir, admin_key=admin)
    try:
        key = ingest_key(served, admin)
        body = batch_body(f"ANY{int(delay * 10)}", 60)
        base = count_rows(db_url)
        outcome = post_in_thread(served, key, body)
        time.sleep(delay)
        served.kill()
        outcome["thread"].join(timeout=30)
        after = count_rows(db_url)
        delta = {t: after[t] - base[t] for t in after}
        if "response" in outcome and outcome["response"].status_code == 200:
            stored = True  # answered before the kill: all of it must be there
        else:
            stored = delta["verdicts"] > 0
        if stored:
            assert delta["verdicts"] == delta["listing_versions"] == delta["listings"] == 60, delta
        else:
            assert delta == dict.fromkeys(delta, 0), delta
    finally:
        served.stop()
    served = serve(tmp_path, database_url=db_url, models_dir=models_dir, admin_key=admin)
    try:
        check_retry(served, key, body, db_url, base)
    finally:
        served.stop()

"""SQLite writers: queued in the process, polling for the lock held by another process."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, make_session_factory, session_scope

Writers = tuple[sessionmaker[Session], Path]


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[Writers]:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield make_session_factory(engine), tmp_path / "w.db"
    engine.dispose()


def test_a_writer_waits_for_another_process_then_writes(sessions: Writers) -> None:
    factory, path = sessions
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    started = time.monotonic()
    with session_scope(factory) as session:
        session.execute(text("INSERT INTO t VALUES (2)"))
    assert 0.25 <= time.monotonic() - started < 5
    with session_scope(factory) as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 2


def test_the_writer_queue_is_released_after_commit_rollback_and_errors(sessions: Writers) -> None:
    factory, _ = sessions
    with session_scope(factory) as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(Exception, match="no such table"), session_scope(factory) as session:
        session.execute(text("INSERT INTO missing VALUES (1)"))
    session = factory()
    session.execute(text("INSERT INTO t VALUES (2)"))
    session.rollback()
    session.close()

    # Eight threads, each writing in transactions with a pause inside: all get through.
    def write(i: int) -> None:
        for _ in range(10):
            with session_scope(factory) as s:
                s.execute(text("INSERT INTO t VALUES (:x)"), {"x": i})
                time.sleep(0.001)
                s.execute(text("INSERT INTO t VALUES (:x)"), {"x": i})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    with session_scope(factory) as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1 + 160

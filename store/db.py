"""Engines and sessions. Nothing is created at import time: callers build them from a URL."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from store.blobs import StagedBlob

log = logging.getLogger("fakeguard.store")

#: Session.info key of the blobs a unit of work staged.
_STAGED_BLOBS = "fakeguard_staged_blobs"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    null_pool: bool = False,
    pg_timeouts: PgTimeouts | None = None,
) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout, PostgreSQL the
    client-side bounds of ``pg_timeouts`` (defaults: :class:`PgTimeouts`)."""
    url = normalise_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS}
    if null_pool:
        kwargs["poolclass"] = NullPool
    elif not url.startswith("sqlite"):
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    if not url.startswith("sqlite"):
        given = make_url(url).query  # parameters in the URL win
        args = (pg_timeouts or PgTimeouts()).connect_args()
        kwargs["connect_args"] = {k: v for k, v in args.items() if k not in given}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling would let a RELEASE SAVEPOINT commit the
            # whole transaction; take control of BEGIN ourselves (SQLAlchemy's documented fix).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        writer = threading.Lock()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Units of work that write ask for IMMEDIATE (see make_session_factory): a deferred
            # transaction that reads, then writes after another connection committed, fails at
            # once with "database is locked" (the busy timeout does not cover that upgrade),
            # whereas an immediate one waits for the write lock.
            # BEGIN and the PRAGMAs go straight to the driver: through SQLAlchemy each was a
            # full statement execution (compile, context, result), a good part of the CPU of
            # a small unit of work.
            raw = conn.connection.driver_connection
            if not conn.get_execution_options().get(WRITES, False):
                _raw_execute(raw, "BEGIN")
                return
            # One writer per process at a time, queued on a lock (held until the connection
            # goes back to the pool, right after its commit or rollback). Without it, every
            # waiting thread sleeps in SQLite's busy handler, whose back-off (1, 2, 5 ... 100
            # ms) misses most of the short moments the lock is free: under concurrency that
            # was most of a request's time (p99 close to a second for ~2 ms of writing).
            if writer.acquire(timeout=SQLITE_BUSY_SECONDS):
                conn.info[_HOLDS_WRITER] = True  # the pool record's info: seen at checkin
            try:
                _begin_immediate(raw)
            except BaseException:
                _release_writer(conn.info)
                raise

        def _release_writer(info: dict[Any, Any]) -> None:
            if info.pop(_HOLDS_WRITER, False):
                writer.release()

        @event.listens_for(engine, "checkin")
        def _sqlite_checkin(_dbapi_conn: Any, record: Any) -> None:
            if record is not None:
                _release_writer(record.info)

    return engine


#: How long opening a PostgreSQL connection may take (unless the URL sets ``connect_timeout``).
PG_CONNECT_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class PgTimeouts:
    """Bounds on how long a PostgreSQL client waits, so a request answers instead of hanging.

    ``connect_seconds``: libpq waits without end for a server that accepts the connection and
    never answers (a host that stopped responding). ``keepalive_seconds``: a connection whose
    peer is gone (host down, network cut) is noticed after about four times this (TCP
    keepalive probes while idle, ``tcp_user_timeout`` while data is unacknowledged), instead of
    the kernel's two hours or more. ``statement_seconds`` (0: none): the server cancels a
    statement running or waiting for a lock longer than this. None bounds a server process that
    is stopped while its host still acknowledges the bytes (no client-side statement timeout in
    libpq); its clients wait for the kernel or an operator.
    """

    connect_seconds: int = PG_CONNECT_TIMEOUT_SECONDS
    keepalive_seconds: int = 10
    statement_seconds: float = 0.0

    def connect_args(self) -> dict[str, Any]:
        """libpq connection parameters (psycopg 3)."""
        args: dict[str, Any] = {
            "connect_timeout": self.connect_seconds,
            "keepalives": 1,
            "keepalives_idle": self.keepalive_seconds,
            "keepalives_interval": self.keepalive_seconds,
            "keepalives_count": 3,
            "tcp_user_timeout": self.keepalive_seconds * 4 * 1000,
        }
        if self.statement_seconds > 0:
            millis = max(1, round(self.statement_seconds * 1000))
            args["options"] = f"-c statement_timeout={millis}"
        return args


#: How long a SQLite writer waits for the write lock before "database is locked".
SQLITE_BUSY_SECONDS = 30.0
_HOLDS_WRITER = "fakeguard_holds_writer_lock"


def _raw_execute(raw: sqlite3.Connection, statement: str) -> None:
    """One statement on the driver's connection; its errors raised as SQLAlchemy's."""
    try:
        raw.execute(statement)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc


def _begin_immediate(raw: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, polling every millisecond while another process holds the write lock.

    SQLite's own busy handler backs off to 100 ms sleeps; writers here hold the lock for a few
    milliseconds, so a fine poll answers sooner (the connection's busy timeout still covers
    every other statement).
    """
    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    _raw_execute(raw, "PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                _raw_execute(raw, "BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                if "locked" not in str(exc.orig) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.001)
    finally:
        _raw_execute(raw, f"PRAGMA busy_timeout = {int(SQLITE_BUSY_SECONDS * 1000)}")


#: Execution option marking a unit of work that will write (SQLite then begins IMMEDIATE).
WRITES = "fakeguard_writes"


def make_session_factory(engine: Engine, *, writes: bool = True) -> sessionmaker[Session]:
    """Sessions for units of work; ``writes=False`` for read-only ones (SQLite: plain BEGIN, so
    readers never queue behind writers). No effect on PostgreSQL."""
    bind = engine.execution_options(**{WRITES: writes})
    return sessionmaker(bind=bind, expire_on_commit=False, autoflush=False)


def stage_blobs(session: Session, staged: Iterable[StagedBlob | None]) -> None:
    """Tie blobs written for this unit of work to its outcome (see :meth:`LocalBlobStore.stage`):
    :func:`finish_unit` publishes them once the commit succeeded; a rollback removes them."""
    pending: list[StagedBlob] = session.info.setdefault(_STAGED_BLOBS, [])
    pending.extend(blob for blob in staged if blob is not None)


def finish_unit(session: Session) -> None:
    """End a unit of work that succeeded: commit (roll back if the commit fails), then close.

    Its staged blobs are published after the commit and removed if the commit is refused. When
    the connection fails during the COMMIT itself the outcome is unknown: they are left under
    their staged names, where reads of a committed row still find them.
    """
    staged: list[StagedBlob] = session.info.pop(_STAGED_BLOBS, [])
    try:
        session.commit()
    except (OperationalError, InterfaceError):
        session.rollback()
        if staged:
            log.warning("commit outcome unknown; %d staged blob(s) left in place", len(staged))
        raise
    except BaseException:
        session.rollback()
        discard_blobs(staged)
        raise
    finally:
        session.close()
    for blob in staged:
        try:
            blob.publish()
        except OSError:  # still found under its staged name (LocalBlobStore.get)
            log.exception("could not publish blob %s", blob.digest)


def abandon_unit(session: Session) -> None:
    """End a unit of work that failed: roll back, remove the blobs it staged, close."""
    try:
        session.rollback()
    finally:
        discard_blobs(session.info.pop(_STAGED_BLOBS, []))
        session.close()


def discard_blobs(staged: Iterable[StagedBlob]) -> None:
    """Remove staged blobs that no unit of work will publish."""
    for blob in staged:
        try:
            blob.discard()
        except OSError:
            log.exception("could not remove staged blob %s", blob.digest)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
    except BaseException:
        abandon_unit(session)
        raise
    finish_unit(session)

"""Single-listing requests of one worker scored together.

A single listing alone pays for a text-model call, a retry look-up, a write unit (on SQLite:
the write lock and a COMMIT) and a thread-pool hop; batched, each of these is shared. So the
requests for ``POST /v1/listings/score`` that one worker receives while it is scoring are
queued, and each group is scored with one :func:`api.ingest.service.score_group` call in one
unit of work (one hop, one look-up, one ``score_many``, one write, one COMMIT). At most one
group per worker is being scored at a time; the next group is whatever arrived meanwhile (plus
whatever arrives in ``window_seconds`` after the first, when a window is set), up to
``max_group`` listings. An idle worker scores a lone request at once (with no window, nothing
waits).

Each request still gets its own answer, as if it had been sent alone: its verdict (``cached``
when the same content was already stored, by an earlier request or an earlier listing of the
same group), or its own error (422 for what is wrong with it; a listing the database refuses
or whose image cannot be stored fails alone while the others are stored). What fails the
group's unit of work as a whole answers each of its requests: 503 when the database or the
text model is unavailable or the COMMIT fails (nothing of the group was stored; a retry is
safe, scoring is idempotent). Any other unexpected error scores the group's listings again one
by one, so that one listing that breaks the scorer fails alone.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool

from api.errors import FakeguardError, ServiceUnavailable, Unprocessable
from api.ingest import service
from api.ingest.schemas import BatchItemError, ListingIn, Verdict
from api.request_id import current_request_id, request_id_var
from store.db import abandon_unit, finish_unit

if TYPE_CHECKING:
    from api.context import AppContext

log = logging.getLogger("fakeguard.scoring")

Outcome = Verdict | BaseException


class ListingNotStored(Exception):
    """The database refused this listing (answered 500 ``internal_error``, as when alone)."""


def database_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "the database is unavailable; retry shortly", headers={"Retry-After": "5"}
    )


def _outcome(result: Verdict | BatchItemError | FakeguardError) -> Outcome:
    if isinstance(result, BatchItemError):
        if result.error == "not_stored":
            return ListingNotStored(result.detail)
        return Unprocessable(result.detail, code=result.error)
    return result


def _each(exc: BaseException, n: int) -> list[Outcome]:
    """One exception per request (each is raised, and gets a traceback, in its own task)."""
    out: list[Outcome] = [exc]
    out.extend(copy.copy(exc) for _ in range(n - 1))
    return out


def score_in_one_unit(ctx: AppContext, bodies: Sequence[ListingIn]) -> list[Outcome]:
    """Score ``bodies`` (single-listing requests) in one writing unit of work: one outcome per
    body, in order. Runs in a worker thread; never raises."""
    try:
        session = ctx.sessions()
        try:
            results = service.score_group(session, ctx, bodies)
        except BaseException:
            abandon_unit(session)
            raise
        finish_unit(session)  # COMMIT; rolled back (and raised) when it fails
        return [_outcome(r) for r in results]
    except (OperationalError, InterfaceError) as exc:
        failed = database_unavailable()
        failed.__cause__ = exc
        return _each(failed, len(bodies))
    except FakeguardError as exc:  # the text model is unavailable, ...
        return _each(exc, len(bodies))
    except Exception as exc:
        if len(bodies) == 1:
            return [exc]
        log.exception("scoring a group of %d listings failed; scoring them one by one", len(bodies))
        return [score_in_one_unit(ctx, [body])[0] for body in bodies]


@dataclass
class _Waiting:
    body: ListingIn
    answer: asyncio.Future[Verdict]
    request_id: str | None


@dataclass
class ScoringQueue:
    """The worker's queue of single-listing requests (see the module's docstring).

    ``enabled=False`` scores each request at once in its own unit of work (same answers).
    """

    ctx: AppContext
    enabled: bool = True
    window_seconds: float = 0.0
    max_group: int = 500
    #: Called with each group's size (metrics).
    on_group: Callable[[int], None] | None = None
    _waiting: list[_Waiting] = field(default_factory=list)
    _drainer: asyncio.Task[None] | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def score(self, body: ListingIn) -> Verdict:
        """The listing's verdict; raises its own error as the route would alone."""
        if not self.enabled:
            return self._answer((await run_in_threadpool(self._score_group, [body]))[0])
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): nothing of the old one survives
            self._loop, self._waiting, self._drainer = loop, [], None
        answer: asyncio.Future[Verdict] = loop.create_future()
        self._waiting.append(_Waiting(body, answer, current_request_id()))
        if self._drainer is None or self._drainer.done():
            # A fresh context: the group's work belongs to no one request (its request id).
            self._drainer = loop.create_task(self._drain(), context=contextvars.Context())
        return await answer

    async def _drain(self) -> None:
        while self._waiting:
            if self.window_seconds > 0:
                await asyncio.sleep(self.window_seconds)
            group = self._waiting[: self.max_group]
            del self._waiting[: self.max_group]
            group = [w for w in group if not w.answer.done()]  # gone: client disconnected
            if not group:
                continue
            try:
                outcomes = await run_in_threadpool(
                    self._score_group,
                    [w.body for w in group],
                    ",".join(w.request_id for w in group if w.request_id),
                )
            except BaseException:  # cancelled (shutdown): answer everyone still waiting
                for w in [*group, *self._waiting]:
                    if not w.answer.done():
                        w.answer.set_exception(
                            ServiceUnavailable("the worker is shutting down; retry shortly")
                        )
                self._waiting = []
                raise
            for w, outcome in zip(group, outcomes, strict=True):
                if w.answer.done():
                    continue
                if isinstance(outcome, BaseException):
                    w.answer.set_exception(outcome)
                else:
                    w.answer.set_result(outcome)

    def _score_group(
        self, bodies: list[ListingIn], request_ids: str | None = None
    ) -> list[Outcome]:
        if request_ids is not None:
            # Log lines of the group's work (its image threads' too) name its requests' ids.
            request_id_var.set(request_ids or None)
        if self.on_group is not None:
            self.on_group(len(bodies))
        return score_in_one_unit(self.ctx, bodies)

    @staticmethod
    def _answer(outcome: Outcome) -> Verdict:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

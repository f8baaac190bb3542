"""Dependencies as Annotated aliases, in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Concatenate, ParamSpec, TypeVar

from fastapi import Depends, Request
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.context import AppContext
from api.errors import Forbidden, NotFound, ServiceUnavailable, Unauthorized
from store.db import abandon_unit, finish_unit, session_scope
from store.keys import ApiKeyRepository, hash_key

# The dependencies below are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency
# in the thread pool, and each such hop cost a single scoring request more CPU than its
# authentication. Whatever touches the database is still sent to the thread pool explicitly.


async def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


def _database_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "the database is unavailable; retry shortly", headers={"Retry-After": "5"}
    )


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A request-scoped unit of work: commits before the response is sent, rolls back on error.

    Reads (GET, HEAD) get a read-only unit of work; the others a writing one (on SQLite it takes
    the write lock at its first statement, so keep reads that precede heavy work elsewhere).
    Opening a session does no I/O; the commit (or rollback) runs in the thread pool, and not at
    all when the request never used the session.
    """
    ctx: AppContext = request.app.state.ctx  # not ContextDep: one dependency less to solve
    factory = ctx.read_sessions if request.method in ("GET", "HEAD") else ctx.sessions
    session = factory()
    try:
        yield session
    except OperationalError as exc:
        await run_in_threadpool(abandon_unit, session)
        raise _database_unavailable() from exc
    except Exception:
        await run_in_threadpool(abandon_unit, session)
        raise
    except BaseException:  # cancelled: no more awaiting
        abandon_unit(session)
        raise
    if not session.in_transaction():
        abandon_unit(session)  # no I/O: nothing to roll back; removes blobs staged for nothing
        return
    try:
        await run_in_threadpool(finish_unit, session)
    except OperationalError as exc:
        raise _database_unavailable() from exc


# scope="function": the commit happens before the response, so a failed commit is never a 2xx.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

P = ParamSpec("P")
T = TypeVar("T")


class UnitOfWork:
    """The request's writing unit of work for an ``async`` route: :meth:`run` does the work and
    its COMMIT in one thread-pool hop.

    With :data:`SessionDep` a plain ``def`` route works in one thread and its session commits
    after the route has returned to the event loop and been sent to the thread pool again; the
    transaction (on SQLite: the write lock, which every other writer waits for) stays open
    through both hops. Here it ends in the thread that wrote it. Errors are handled as for
    :data:`SessionDep` (which this wraps): a failed COMMIT answers 503, anything raised rolls
    back, and a unit the work never used is not committed.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    async def run(
        self, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``work(session, *args, **kwargs)``, then the commit, in a worker thread."""
        return await run_in_threadpool(
            self._finish_after, partial(work, self.session, *args, **kwargs)
        )

    def _finish_after(self, call: Callable[[], T]) -> T:
        result = call()
        if self.session.in_transaction():
            finish_unit(self.session)  # closes it: get_session has nothing left to do
        return result


async def get_unit_of_work(session: SessionDep) -> UnitOfWork:
    return UnitOfWork(session)


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    key_id: str
    role: str
    brand_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can_access_brand(self, brand_id: str) -> bool:
        return self.is_admin or (self.role == "brand" and self.brand_id == brand_id)

    def require_brand(self, brand_id: str) -> None:
        """Admins may act for any brand, a brand key only for its own.

        A brand key asking for another brand gets the same 404 as for a brand that does not
        exist, so existence does not leak across brands.
        """
        if not self.can_access_brand(brand_id):
            raise NotFound(f"brand {brand_id} not found")


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "malformed Authorization header: expected 'Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def _look_up(ctx: AppContext, token: str) -> Principal | None:
    """The key's principal from its own short read-only unit of work (not the request's)."""
    with session_scope(ctx.read_sessions) as session:
        row = ApiKeyRepository(session).authenticate(token)
        if row is None:
            return None
        return Principal(key_id=row.id, role=row.role, brand_id=row.brand_id)


async def authenticate(request: Request) -> Principal:
    """The caller's key: from this worker's key cache (valid keys, a few seconds; see
    :mod:`api.keycache`) or looked up in the database."""
    ctx: AppContext = request.app.state.ctx
    token = _bearer_token(request)
    digest = hash_key(token)
    principal = ctx.keys.get(digest)
    if principal is None:
        try:
            principal = await run_in_threadpool(_look_up, ctx, token)
        except OperationalError as exc:
            raise _database_unavailable() from exc
        if principal is None:
            raise Unauthorized("invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        ctx.keys.put(digest, principal)
    return principal


def require_role(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates and allows only ``roles`` (admin is always allowed)."""
    allowed = frozenset(roles) | {"admin"}

    # One dependency that authenticates and checks: every route has one, and FastAPI's cost of
    # solving a dependency (per request) is several times that of a key-cache hit.
    async def _check(request: Request) -> Principal:
        principal = await authenticate(request)
        if principal.role not in allowed:
            raise Forbidden(
                f"this endpoint needs one of the roles {sorted(allowed)}; "
                f"your key has role {principal.role!r}"
            )
        return principal

    return _check


AdminKey = Annotated[Principal, Depends(require_role("admin"))]
BrandKey = Annotated[Principal, Depends(require_role("brand"))]
IngestKey = Annotated[Principal, Depends(require_role("ingest"))]
ReviewerKey = Annotated[Principal, Depends(require_role("reviewer"))]

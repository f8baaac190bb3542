"""Sign-in for the review pages: reviewer keys become server-side sessions held in a cookie.

* The session token (256 bits) lives only in an HttpOnly, SameSite=Strict cookie (Secure over
  https) scoped to ``/review``; the database keeps its SHA-256 (``store.sessions``).
* Every POST carries a CSRF token in a hidden field (or the ``X-CSRF-Token`` header for the
  page's fetch calls): an HMAC of the session token, so nothing more is stored and a leaked
  database row does not yield it. The sign-in form itself is protected by a double-submit nonce
  (a short-lived cookie and the same value in the form), against login CSRF.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from api.deps import ContextDep, Principal
from api.errors import ServiceUnavailable
from store.audit import AuditRepository
from store.db import session_scope
from store.keys import ApiKeyRepository
from store.sessions import ReviewerSessionRepository

SESSION_COOKIE = "fg_review_session"
SIGNIN_COOKIE = "fg_review_signin"
COOKIE_PATH = "/review"
CSRF_HEADER = "x-csrf-token"
PAGE_ROLES = ("reviewer", "admin")
SIGNIN_NONCE_SECONDS = 3600


class SignInRequired(Exception):
    """No live session: GET pages redirect to the sign-in form, other requests get 401."""


class CsrfRejected(Exception):
    """A POST without the right CSRF token: 403 with a page that says what to do."""


class SignInFailed(Exception):
    """A key that cannot open the review pages (unknown, revoked, or a role without access)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass(frozen=True)
class Reviewer:
    """The signed-in reviewer of a page request."""

    principal: Principal
    name: str | None
    token: str
    expires_at: datetime

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)

    @property
    def label(self) -> str:
        return self.name or f"key {self.principal.key_id[:8]}"


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"fakeguard review csrf", hashlib.sha256).hexdigest()


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_secure(request)
    )


def current_reviewer(request: Request, ctx: ContextDep) -> Reviewer | None:
    """The live session of this request's cookie, looked up in its own read-only unit of work."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        with session_scope(ctx.read_sessions) as session:
            live = ReviewerSessionRepository(session).live(token)
    except OperationalError as exc:
        raise ServiceUnavailable(
            "the database is unavailable; retry shortly", headers={"Retry-After": "5"}
        ) from exc
    if live is None or live.role not in PAGE_ROLES:
        return None
    principal = Principal(key_id=live.key_id, role=live.role, brand_id=live.brand_id)
    return Reviewer(principal, live.key_name, token, live.expires_at)


def require_reviewer(
    reviewer: Annotated[Reviewer | None, Depends(current_reviewer)],
) -> Reviewer:
    if reviewer is None:
        raise SignInRequired()
    return reviewer


async def require_csrf(
    request: Request, reviewer: Annotated[Reviewer, Depends(require_reviewer)]
) -> Reviewer:
    """A signed-in reviewer whose POST carries the session's CSRF token (form field or header)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, reviewer.csrf):
        raise CsrfRejected()
    return reviewer


PageReviewer = Annotated[Reviewer, Depends(require_reviewer)]
MaybeReviewer = Annotated[Reviewer | None, Depends(current_reviewer)]
PostingReviewer = Annotated[Reviewer, Depends(require_csrf)]


def new_signin_nonce() -> str:
    return secrets.token_urlsafe(24)


def check_signin_nonce(request: Request, sent: str | None) -> None:
    expected = request.cookies.get(SIGNIN_COOKIE)
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise CsrfRejected()


def sign_in(session: Session, key: str, lifetime: timedelta) -> str:
    """Check a reviewer or admin key and open a session; returns the session token."""
    row = ApiKeyRepository(session).authenticate(key.strip())
    if row is None:
        raise SignInFailed("That key is not valid or has been revoked.", 401)
    if row.role not in PAGE_ROLES:
        raise SignInFailed(
            f"This key has the role {row.role!r}; the review pages need a reviewer or admin key.",
            403,
        )
    opened, token = ReviewerSessionRepository(session).create(row.id, lifetime)
    AuditRepository(session).record(
        "review.sign_in",
        "reviewer_session",
        opened.id,
        actor_key_id=row.id,
        detail={"expires_at": opened.expires_at.isoformat()},
    )
    return token


def sign_out(session: Session, reviewer: Reviewer) -> None:
    if ReviewerSessionRepository(session).end(reviewer.token):
        AuditRepository(session).record(
            "review.sign_out", "reviewer_session", None, actor_key_id=reviewer.principal.key_id
        )

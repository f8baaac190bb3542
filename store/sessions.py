"""Reviewer sessions for the /review pages: random tokens, stored only as SHA-256 digests.

A session token carries 256 bits of entropy, so a fast hash is appropriate (as for API keys).
A session is live while it has not expired and its key is not revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from store.tables import ApiKey, ReviewerSession, utcnow


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LiveSession:
    """A live session and the key behind it."""

    id: str
    key_id: str
    role: str
    brand_id: str | None
    key_name: str | None
    expires_at: datetime


class ReviewerSessionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self, key_id: str, lifetime: timedelta, now: datetime | None = None
    ) -> tuple[ReviewerSession, str]:
        """Open a session for ``key_id``; returns the row and the token (never stored).

        Expired sessions are purged on the way (sign-ins are rare, so this costs nothing).
        """
        now = now or utcnow()
        self.session.execute(delete(ReviewerSession).where(ReviewerSession.expires_at <= now))
        token = secrets.token_urlsafe(32)
        row = ReviewerSession(
            token_hash=hash_token(token), key_id=key_id, created_at=now, expires_at=now + lifetime
        )
        self.session.add(row)
        self.session.flush()
        return row, token

    def live(self, token: str, now: datetime | None = None) -> LiveSession | None:
        """The live session holding ``token`` (unexpired, key not revoked), or None."""
        if not token or len(token) > 200:
            return None
        now = now or utcnow()
        found = self.session.execute(
            select(ReviewerSession, ApiKey)
            .join(ApiKey, ApiKey.id == ReviewerSession.key_id)
            .where(
                ReviewerSession.token_hash == hash_token(token),
                ReviewerSession.expires_at > now,
                ApiKey.revoked_at.is_(None),
            )
        ).one_or_none()
        if found is None:
            return None
        row, key = found
        return LiveSession(row.id, key.id, key.role, key.brand_id, key.name, row.expires_at)

    def end(self, token: str) -> bool:
        """Delete the session holding ``token``; True if there was one."""
        result = self.session.execute(
            delete(ReviewerSession).where(ReviewerSession.token_hash == hash_token(token))
        )
        return bool(getattr(result, "rowcount", 0))

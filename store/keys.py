"""API keys: random secrets shown once, stored as SHA-256 digests, compared in constant time.

A key looks like ``fg_<prefix>_<secret>``. ``prefix`` (public, 12 hex chars) finds the row; the
whole key's SHA-256 is compared with :func:`hmac.compare_digest`. Keys carry 256 bits of entropy,
so a fast hash is appropriate (slow password hashes protect low-entropy secrets).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.tables import ApiKey, utcnow

ROLES: tuple[str, ...] = ("admin", "ingest", "reviewer", "brand")
KEY_PREFIX = "fg_"


@dataclass(frozen=True)
class KeyParts:
    prefix: str
    digest: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_key(key: str) -> KeyParts | None:
    """Split a presented key into its lookup prefix and digest; None if it is not ours."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    rest = key[len(KEY_PREFIX) :]
    prefix, sep, secret = rest.partition("_")
    if not sep or not prefix or not secret:
        return None
    return KeyParts(prefix=prefix, digest=hash_key(key))


def generate_key() -> str:
    return f"{KEY_PREFIX}{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


class ApiKeyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self, role: str, brand_id: str | None = None, name: str | None = None
    ) -> tuple[ApiKey, str]:
        """Create a key; returns the row and the plaintext key (which is never stored)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        key = generate_key()
        row = self._insert(key, role, brand_id, name)
        return row, key

    def ensure(self, key: str, role: str, name: str | None = None) -> ApiKey:
        """Make sure a key with exactly this value exists (bootstrap admin key); idempotent."""
        parts = parse_key(key)
        if parts is None:
            raise ValueError(
                "a bootstrap key must look like fg_<prefix>_<secret>; "
                "generate one with `fakeguard keys generate`"
            )
        existing = self.session.scalar(select(ApiKey).where(ApiKey.prefix == parts.prefix))
        if existing is not None:
            if not hmac.compare_digest(existing.key_hash, parts.digest):
                raise ValueError("another key already uses this key's prefix")
            if existing.role != role or existing.revoked_at is not None:
                existing.role, existing.revoked_at = role, None
            return existing
        try:
            with self.session.begin_nested():
                return self._insert(key, role, None, name)
        except IntegrityError:
            # Another worker inserted it at the same moment.
            row = self.session.scalar(select(ApiKey).where(ApiKey.prefix == parts.prefix))
            assert row is not None
            return row

    def _insert(self, key: str, role: str, brand_id: str | None, name: str | None) -> ApiKey:
        parts = parse_key(key)
        assert parts is not None
        row = ApiKey(
            prefix=parts.prefix, key_hash=parts.digest, role=role, brand_id=brand_id, name=name
        )
        self.session.add(row)
        self.session.flush()
        return row

    def authenticate(self, key: str) -> ApiKey | None:
        """The live key matching ``key``, or None. Constant-time digest comparison."""
        parts = parse_key(key)
        if parts is None:
            return None
        row = self.session.scalar(select(ApiKey).where(ApiKey.prefix == parts.prefix))
        if row is None or not hmac.compare_digest(row.key_hash, parts.digest):
            return None
        if row.revoked_at is not None:
            return None
        return row

    def touch(self, key_id: str, when: datetime | None = None) -> None:
        self.session.execute(
            update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when or utcnow())
        )

    def get(self, key_id: str) -> ApiKey | None:
        return self.session.get(ApiKey, key_id)

    def page(self, *, limit: int, offset: int) -> tuple[list[ApiKey], int]:
        from sqlalchemy import func

        total = self.session.scalar(select(func.count()).select_from(ApiKey)) or 0
        rows = self.session.scalars(
            select(ApiKey).order_by(ApiKey.created_at, ApiKey.id).limit(limit).offset(offset)
        ).all()
        return list(rows), total

    def revoke(self, key_id: str) -> ApiKey | None:
        row = self.session.get(ApiKey, key_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
            self.session.flush()
        return row

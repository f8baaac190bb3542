"""Key management."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from api.admin.schemas import KeyCreate, KeyCreated, KeyOut
from api.catalog import after_commit
from api.deps import Principal
from api.errors import NotFound, Unprocessable
from store.audit import AuditRepository
from store.brands import BrandRepository
from store.keys import ApiKeyRepository
from store.tables import ApiKey


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        prefix=row.prefix,
        role=row.role,
        brand_id=row.brand_id,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def create_key(session: Session, actor: Principal, body: KeyCreate) -> KeyCreated:
    if body.role == "brand":
        if not body.brand_id:
            raise Unprocessable("a brand key needs brand_id", code="brand_required")
        if BrandRepository(session).get(body.brand_id) is None:
            raise NotFound(f"brand {body.brand_id} not found")
    elif body.brand_id is not None:
        raise Unprocessable("only brand keys are bound to a brand", code="brand_not_allowed")
    row, key = ApiKeyRepository(session).create(body.role, body.brand_id, body.name)
    AuditRepository(session).record(
        "key.create",
        "api_key",
        row.id,
        actor_key_id=actor.key_id,
        brand_id=row.brand_id,
        detail={"role": row.role},
    )
    return KeyCreated(id=row.id, key=key, role=body.role, brand_id=row.brand_id, name=row.name)


def list_keys(session: Session, limit: int, offset: int) -> tuple[list[KeyOut], int]:
    rows, total = ApiKeyRepository(session).page(limit=limit, offset=offset)
    return [key_out(r) for r in rows], total


def revoke_key(
    session: Session, actor: Principal, key_id: str, *, forget: Callable[[], None]
) -> KeyOut:
    """Revoke a key; ``forget`` (dropping the worker's cached keys) runs once it is committed."""
    row = ApiKeyRepository(session).revoke(key_id)
    if row is None:
        raise NotFound(f"key {key_id} not found")
    AuditRepository(session).record(
        "key.revoke", "api_key", row.id, actor_key_id=actor.key_id, brand_id=row.brand_id
    )
    after_commit(session, forget)
    return key_out(row)

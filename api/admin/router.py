"""Admin endpoints: API keys."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.admin import service
from api.admin.schemas import KeyCreate, KeyCreated, KeyList, KeyOut
from api.deps import AdminKey, ContextDep, SessionDep
from api.errors import AUTH_ERRORS, NotFound, Unprocessable, error_responses
from api.pagination import PageDep, PageInfo

router = APIRouter(prefix="/v1/keys", tags=["admin"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses=error_responses(*AUTH_ERRORS, NotFound, Unprocessable),
)
def create_key(body: KeyCreate, session: SessionDep, admin: AdminKey) -> KeyCreated:
    """Create an API key; the secret is returned once and stored only as a hash."""
    return service.create_key(session, admin, body)


@router.get("", response_model=KeyList, responses=error_responses(*AUTH_ERRORS))
def list_keys(session: SessionDep, admin: AdminKey, page: PageDep) -> KeyList:
    """List API keys (never their secrets)."""
    keys, total = service.list_keys(session, page.limit, page.offset)
    return KeyList(keys=keys, **PageInfo.of(page, total, len(keys)).model_dump())


@router.delete(
    "/{key_id}", response_model=KeyOut, responses=error_responses(*AUTH_ERRORS, NotFound)
)
def revoke_key(key_id: str, session: SessionDep, ctx: ContextDep, admin: AdminKey) -> KeyOut:
    """Revoke an API key; it stops working at once in this worker, within
    ``FAKEGUARD_AUTH_CACHE_SECONDS`` in the others."""
    return service.revoke_key(session, admin, key_id, forget=ctx.keys.clear)

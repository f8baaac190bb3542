"""What the review pages need beyond the review services: brand names for the filters, who
holds what, and which item to open next. Queries stay in the repositories."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.context import AppContext
from api.review import service
from api.web.auth import Reviewer
from store.brands import BrandRepository
from store.keys import ApiKeyRepository
from store.review import ReviewRepository


def brand_choices(session: Session) -> list[tuple[str, str]]:
    rows, _ = BrandRepository(session).page(limit=1000, offset=0)
    return [(b.id, b.name) for b in rows]


def neighbours(session: Session, f: service.Filters, item_id: str) -> tuple[str | None, str | None]:
    """The previous and next items in the queue's order (same filters), however deep."""
    return ReviewRepository(session).neighbours(f.store(), item_id)


def key_names(session: Session, key_ids: set[str]) -> dict[str, str]:
    repo = ApiKeyRepository(session)
    out = {}
    for key_id in key_ids:
        row = repo.get(key_id)
        out[key_id] = (row.name if row and row.name else None) or f"key {key_id[:8]}"
    return out


def next_item(
    session: Session, ctx: AppContext, reviewer: Reviewer, f: service.Filters
) -> str | None:
    """The reviewer's own claimed items first (pages claim what they open, so browsing with j/k
    leaves claims behind), then the riskiest pending item, claimed now."""
    mine = ReviewRepository(session).first_held(f.store(), reviewer.principal.key_id)
    if mine is not None:
        return mine
    item = service.claim_next(session, ctx, reviewer.principal, f)
    return item.id if item is not None else None

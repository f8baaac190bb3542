"""Review queue orchestration: queue pages, lease claims, decisions, item details, brand views.

Every function takes the session and the calling principal and returns schemas, so the JSON
routes and the server-rendered reviewer pages share them. Role checks are the routes'
dependencies; brand ownership and claim ownership are checked here, below the route.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from api.brands.schemas import Money
from api.brands.service import CONTENT_TYPES
from api.context import AppContext
from api.deps import Principal
from api.errors import Conflict, NotFound, ServiceUnavailable
from api.ingest.schemas import ReasonOut, SpanOut
from api.pagination import Page, PageInfo
from api.review.schemas import (
    BrandContext,
    DecisionIn,
    DecisionOut,
    FlaggedList,
    FlaggedListing,
    LaterVersion,
    ListingImageOut,
    ListingSnapshotOut,
    ReviewImageMatch,
    ReviewItemDetail,
    ReviewItemOut,
    ReviewQueue,
    ReviewVerdict,
)
from detector.signals import authorised_sellers, seller_authorised
from store.audit import AuditRepository
from store.blobs import BlobStoreError
from store.brands import BrandRepository
from store.listings import ListingRepository
from store.review import (
    QueueFilter,
    QueueRow,
    ReviewRepository,
    effective_status,
    lease_live,
)
from store.tables import ListingVersion, ReviewDecision, ReviewItem, Verdict, utcnow


@dataclass(frozen=True)
class Filters:
    """Queue filters as the routes and pages take them."""

    status: str | None = None
    brand_id: str | None = None
    decision: str | None = None
    min_score: float | None = None

    def store(self) -> QueueFilter:
        return QueueFilter(self.status, self.brand_id, self.decision, self.min_score)


def _lease(ctx: AppContext) -> timedelta:
    return timedelta(seconds=ctx.settings.review_lease_seconds)


def item_out(row: QueueRow, now: datetime | None = None) -> ReviewItemOut:
    now = now or utcnow()
    item = row.item
    live = lease_live(item, now)
    return ReviewItemOut(
        id=item.id,
        listing_id=row.external_id,
        seller_id=row.seller_id,
        title=row.title,
        score=item.score,
        decision=item.decision,  # type: ignore[arg-type]
        brand_id=item.brand_id,
        status=effective_status(item, now),  # type: ignore[arg-type]
        claimed_by=item.claimed_by if live else None,
        claim_expires_at=item.claim_expires_at if live else None,
        label=item.label,  # type: ignore[arg-type]
        decided_at=item.decided_at,
        verdict_id=item.verdict_id,
        listing_version_id=item.listing_version_id,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def queue(session: Session, filters: Filters, page: Page) -> ReviewQueue:
    """One page of the queue, highest score first, then oldest first."""
    now = utcnow()
    rows, total = ReviewRepository(session).page(
        filters.store(), limit=page.limit, offset=page.offset, now=now
    )
    return ReviewQueue(
        items=[item_out(r, now) for r in rows],
        **PageInfo.of(page, total, len(rows)).model_dump(),
    )


def _item(repo: ReviewRepository, item_id: str, *, for_update: bool = False) -> ReviewItem:
    item = repo.get(item_id, for_update=for_update)
    if item is None:
        raise NotFound(f"review item {item_id} not found")
    return item


def claim(session: Session, ctx: AppContext, principal: Principal, item_id: str) -> ReviewItemOut:
    """Claim an item for the lease time, or extend one's own claim."""
    repo = ReviewRepository(session)
    item, won = repo.claim(item_id, principal.key_id, _lease(ctx))
    if item is None:
        raise NotFound(f"review item {item_id} not found")
    if not won:
        raise Conflict(
            f"review item {item_id} is claimed by another reviewer until "
            f"{item.claim_expires_at.isoformat() if item.claim_expires_at else '?'}",
            code="already_claimed",
        )
    return item_out(repo.row(item))


def release(session: Session, principal: Principal, item_id: str) -> ReviewItemOut:
    """Give up the caller's claim on an item (nothing to do when the caller holds none)."""
    repo = ReviewRepository(session)
    item = _item(repo, item_id)
    if repo.release(item_id, principal.key_id):
        session.refresh(item)  # the release is a Core UPDATE: reload what it changed
    return item_out(repo.row(item))


def claim_next(
    session: Session, ctx: AppContext, principal: Principal, filters: Filters
) -> ReviewItemOut | None:
    """Claim the highest-risk pending item matching the filters; None when there is none."""
    repo = ReviewRepository(session)
    item = repo.claim_next(filters.store(), principal.key_id, _lease(ctx))
    return item_out(repo.row(item)) if item is not None else None


def decide(session: Session, principal: Principal, item_id: str, body: DecisionIn) -> ReviewItemOut:
    """Record a decision. The caller must hold a live claim on the item (admins need not).

    A decision on a decided item revises it: the history keeps every decision.
    """
    repo = ReviewRepository(session)
    item = _item(repo, item_id, for_update=True)
    now = utcnow()
    if not principal.is_admin and not (
        lease_live(item, now) and item.claimed_by == principal.key_id
    ):
        if lease_live(item, now):
            raise Conflict(
                f"review item {item_id} is claimed by another reviewer", code="already_claimed"
            )
        raise Conflict(
            f"claim review item {item_id} first (POST /v1/review/{item_id}/claim)",
            code="claim_required",
        )
    if body.verdict_id is not None and body.verdict_id != item.verdict_id:
        raise Conflict(
            f"the listing was rescored since verdict {body.verdict_id}; the item now holds "
            f"verdict {item.verdict_id}: look again before deciding",
            code="item_changed",
        )
    decision = repo.decide(
        item,
        key_id=principal.key_id,
        label=body.label,
        note=body.note,
        reason_codes=body.reason_codes,
        now=now,
    )
    AuditRepository(session).record(
        "review.decision",
        "review_item",
        item.id,
        actor_key_id=principal.key_id,
        brand_id=item.brand_id,
        detail={
            "label": decision.label,
            "previous_label": decision.previous_label,
            "decision_id": decision.id,
            "verdict_id": decision.verdict_id,
            "listing_version_id": decision.listing_version_id,
            "reason_codes": decision.reason_codes,
        },
        note=body.note,
    )
    return item_out(repo.row(item), now)


def decision_out(row: ReviewDecision) -> DecisionOut:
    return DecisionOut(
        id=row.id,
        label=row.label,  # type: ignore[arg-type]
        previous_label=row.previous_label,  # type: ignore[arg-type]
        note=row.note,
        reason_codes=list(row.reason_codes or []),
        reviewer_key_id=row.reviewer_key_id,
        verdict_id=row.verdict_id,
        listing_version_id=row.listing_version_id,
        created_at=row.created_at,
    )


def money(amount: Decimal | None, currency: str | None) -> Money | None:
    if amount is None or not currency or amount <= 0:
        return None
    return Money(amount=amount, currency=currency)


def _image_out(item_id: str, entry: dict[str, Any]) -> ListingImageOut:
    index = int(entry.get("index", 0))
    sha = entry.get("sha256")
    return ListingImageOut(
        index=index,
        sha256=sha,
        bytes=entry.get("bytes"),
        width=entry.get("width"),
        height=entry.get("height"),
        format=entry.get("format"),
        quality=entry.get("quality"),
        hashes=dict(entry.get("hashes") or {}),
        url=entry.get("url"),
        error=entry.get("error"),
        image_url=f"/v1/review/{item_id}/images/{index}" if sha else None,
    )


def snapshot_out(item_id: str, external_id: str, version: ListingVersion) -> ListingSnapshotOut:
    return ListingSnapshotOut(
        listing_id=external_id,
        version_id=version.id,
        seller_id=version.seller_id,
        title=version.title,
        description=version.description,
        price=money(version.price_amount, version.price_currency),
        brand_claimed=version.brand_claimed,
        category=version.category,
        images=[_image_out(item_id, e) for e in version.images or []],
        created_at=version.created_at,
    )


def verdict_out(row: Verdict) -> ReviewVerdict:
    return ReviewVerdict(
        verdict_id=row.id,
        score=row.score,
        decision=row.decision,  # type: ignore[arg-type]
        brand_id=row.brand_id,
        reasons=[ReasonOut(**r) for r in row.reasons],
        image_matches=[
            ReviewImageMatch(
                **m,
                image_url=f"/v1/brands/{m['brand_id']}/references/{m['reference_id']}/image",
            )
            for m in row.image_matches
        ],
        spans=[SpanOut(**s) for s in row.spans],
        model_version=row.model_version,
        catalog_version=row.catalog_version,
        scored_at=row.scored_at,
    )


def item_detail(session: Session, item_id: str) -> ReviewItemDetail:
    """Everything a reviewer needs to judge an item."""
    repo = ReviewRepository(session)
    record = repo.record(item_id)
    if record is None:
        raise NotFound(f"review item {item_id} not found")
    now = utcnow()
    base = item_out(
        QueueRow(
            record.item, record.listing.external_id, record.version.seller_id, record.version.title
        ),
        now,
    )
    brand_ctx = None
    if record.item.brand_id is not None:
        brand = BrandRepository(session).get(record.item.brand_id)
        if brand is not None:
            brand_ctx = BrandContext(
                id=brand.id,
                name=brand.name,
                reference_price=money(brand.reference_price_amount, brand.reference_price_currency),
                seller_authorised=seller_authorised(
                    record.version.seller_id, authorised_sellers(brand.authorized_sellers or [])
                ),
            )
    decisions = repo.decisions([item_id])[item_id]
    history = ListingRepository(session).history(record.listing.external_id)
    ids = [version.id for version, _ in history]
    after = ids.index(record.version.id) + 1 if record.version.id in ids else len(ids)
    return ReviewItemDetail(
        **base.model_dump(),
        listing=snapshot_out(item_id, record.listing.external_id, record.version),
        verdict=verdict_out(record.verdict),
        brand=brand_ctx,
        decisions=[decision_out(d) for d in decisions],
        later_versions=[
            LaterVersion(
                version_id=version.id,
                title=version.title,
                score=verdict.score,
                decision=verdict.decision,  # type: ignore[arg-type]
                scored_at=verdict.scored_at,
            )
            for version, verdict in history[after:]
        ],
    )


def listing_image(session: Session, ctx: AppContext, item_id: str, index: int) -> tuple[bytes, str]:
    """The stored bytes of one image of the item's listing version, and its content type."""
    record = ReviewRepository(session).record(item_id)
    if record is None:
        raise NotFound(f"review item {item_id} not found")
    entry = next((e for e in record.version.images or [] if e.get("index") == index), None)
    if entry is None or not entry.get("sha256"):
        raise NotFound(f"review item {item_id} has no stored image {index}")
    try:
        data = ctx.blobs.get(str(entry["sha256"]))
    except (BlobStoreError, ValueError) as exc:
        raise ServiceUnavailable(str(exc), code="blob_store_unavailable") from exc
    if data is None:
        raise NotFound(
            f"the bytes of image {index} of review item {item_id} are missing from the blob store",
            code="blob_missing",
        )
    return data, CONTENT_TYPES.get(str(entry.get("format") or ""), "application/octet-stream")


def brand_flagged(
    session: Session, principal: Principal, brand_id: str, status: str | None, page: Page
) -> FlaggedList:
    """A brand's flagged listings and their outcomes (brand keys: their own brand only)."""
    principal.require_brand(brand_id)
    if BrandRepository(session).get(brand_id) is None:
        raise NotFound(f"brand {brand_id} not found")
    now = utcnow()
    rows, total = ReviewRepository(session).brand_page(
        brand_id, status=status, limit=page.limit, offset=page.offset, now=now
    )
    items = [
        FlaggedListing(
            item_id=r.item.id,
            listing_id=r.external_id,
            seller_id=r.seller_id,
            title=r.title,
            score=r.item.score,
            decision=r.item.decision,  # type: ignore[arg-type]
            status=effective_status(r.item, now),  # type: ignore[arg-type]
            outcome=r.item.label,  # type: ignore[arg-type]
            decided_at=r.item.decided_at,
            created_at=r.item.created_at,
        )
        for r in rows
    ]
    return FlaggedList(items=items, **PageInfo.of(page, total, len(items)).model_dump())

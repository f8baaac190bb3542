"""The review queue: flagged listing versions, lease-based claims and append-only decisions.

Claims are leases. Every claim is a conditional ``UPDATE ... WHERE <lease free>`` whose row count
says whether it won, which is correct on every backend; on PostgreSQL ``claim_next`` also picks its
row with ``FOR UPDATE SKIP LOCKED`` so concurrent reviewers do not queue up behind one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from store.listings import StoredVerdict, chunks, insert_rows, update_rows
from store.tables import (
    Listing,
    ListingVersion,
    ReviewDecision,
    ReviewItem,
    Verdict,
    new_id,
    utcnow,
)

_ITEMS = cast(Table, ReviewItem.__table__)
#: The open items of some listings, locked (Core, built once: see store.listings).
_OPEN_ITEMS = (
    select(_ITEMS.c.id, _ITEMS.c.open_listing_id)
    .where(_ITEMS.c.open_listing_id.in_(bindparam("listing_ids", expanding=True)))
    .with_for_update()
)

#: Verdict decisions that put a listing in the queue.
FLAGGED = ("review", "block")
STATUSES = ("pending", "claimed", "decided")
LABELS = ("counterfeit", "genuine", "unsure")


@dataclass(frozen=True)
class QueueFilter:
    """Queue filters; ``status`` None means open items (pending and claimed)."""

    status: str | None = None
    brand_id: str | None = None
    decision: str | None = None
    min_score: float | None = None


@dataclass(frozen=True)
class QueueRow:
    item: ReviewItem
    external_id: str
    seller_id: str
    title: str


@dataclass(frozen=True)
class ItemRecord:
    """An item with everything it points at."""

    item: ReviewItem
    listing: Listing
    version: ListingVersion
    verdict: Verdict


def lease_live(item: ReviewItem, now: datetime) -> bool:
    return (
        item.claimed_by is not None
        and item.claim_expires_at is not None
        and item.claim_expires_at > now
    )


def effective_status(item: ReviewItem, now: datetime) -> str:
    """pending | claimed | decided, counting an expired lease as no claim."""
    if item.status == "decided":
        return "decided"
    return "claimed" if lease_live(item, now) else "pending"


def _lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(
        ReviewItem.claimed_by.is_(None),
        ReviewItem.claim_expires_at.is_(None),
        ReviewItem.claim_expires_at <= now,
    )


def _filters(f: QueueFilter, now: datetime) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.status == "decided":
        where.append(ReviewItem.status == "decided")
    elif f.status == "claimed":
        where += [
            ReviewItem.status != "decided",
            ReviewItem.claimed_by.is_not(None),
            ReviewItem.claim_expires_at > now,
        ]
    elif f.status == "pending":
        where += [ReviewItem.status != "decided", _lease_free(now)]
    else:
        where.append(ReviewItem.status != "decided")
    if f.brand_id is not None:
        where.append(ReviewItem.brand_id == f.brand_id)
    if f.decision is not None:
        where.append(ReviewItem.decision == f.decision)
    if f.min_score is not None:
        where.append(ReviewItem.score >= f.min_score)
    return where


_RISK_ORDER = (ReviewItem.score.desc(), ReviewItem.created_at, ReviewItem.id)


class ReviewRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- the queue -------------------------------------------------------------------------

    def enqueue_for_verdict(
        self, verdict: Verdict, now: datetime | None = None
    ) -> ReviewItem | None:
        """Put a flagged verdict in the queue; returns the open item (None if not flagged).

        One open item per listing: a new flagged version updates the listing's open item (which
        keeps its place in line and any claim); a decided item is left as it is and a new one
        opens.
        """
        if verdict.decision not in FLAGGED:
            return None
        now = now or utcnow()
        for attempt in range(3):
            try:
                with self.session.begin_nested():
                    item = self.session.scalar(
                        select(ReviewItem)
                        .where(ReviewItem.open_listing_id == verdict.listing_id)
                        .with_for_update()
                        .execution_options(populate_existing=True)
                    )
                    if item is None:
                        item = ReviewItem(
                            listing_id=verdict.listing_id,
                            open_listing_id=verdict.listing_id,
                            status="pending",
                            created_at=now,
                        )
                        self.session.add(item)
                    item.listing_version_id = verdict.listing_version_id
                    item.verdict_id = verdict.id
                    item.score = verdict.score
                    item.decision = verdict.decision
                    item.brand_id = verdict.brand_id
                    item.updated_at = now
                    self.session.flush()
                    return item
            except IntegrityError:
                # Another scoring of this listing opened its item meanwhile: update that one.
                if attempt == 2:
                    raise
        return None  # pragma: no cover (the loop returns or raises)

    def enqueue_many(
        self, verdicts: Sequence[Verdict | StoredVerdict], now: datetime | None = None
    ) -> None:
        """:meth:`enqueue_for_verdict` for many new verdicts with a fixed number of statements.

        Verdicts of one listing are applied in the order given (its open item ends up on the
        last flagged one). An item opened meanwhile by a concurrent writer raises
        ``IntegrityError`` (one open item per listing); callers then fall back to
        :meth:`enqueue_for_verdict`, which retries on exactly that.
        """
        now = now or utcnow()
        last: dict[str, Verdict | StoredVerdict] = {}
        for verdict in verdicts:
            if verdict.decision in FLAGGED:
                last[verdict.listing_id] = verdict
        if not last:
            return
        open_items: dict[str, str] = {}
        conn = self.session.connection()
        for part in chunks(sorted(last)):
            for item_id, listing_id in conn.execute(_OPEN_ITEMS, {"listing_ids": list(part)}):
                open_items[str(listing_id)] = item_id
        fresh: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        for listing_id, verdict in last.items():
            values = {
                "listing_version_id": verdict.listing_version_id,
                "verdict_id": verdict.id,
                "score": verdict.score,
                "decision": verdict.decision,
                "brand_id": verdict.brand_id,
                "updated_at": now,
            }
            if listing_id in open_items:
                changed.append({"id": open_items[listing_id], **values})
            else:
                fresh.append(
                    {
                        "id": new_id(),
                        "listing_id": listing_id,
                        "open_listing_id": listing_id,
                        "status": "pending",
                        "created_at": now,
                        **values,
                    }
                )
        insert_rows(self.session, ReviewItem, fresh)
        update_rows(self.session, ReviewItem, changed)

    def get(self, item_id: str, *, for_update: bool = False) -> ReviewItem | None:
        query = select(ReviewItem).where(ReviewItem.id == item_id)
        if for_update:
            query = query.with_for_update()
        return self.session.scalar(query.execution_options(populate_existing=True))

    def page(
        self, f: QueueFilter, *, limit: int, offset: int, now: datetime | None = None
    ) -> tuple[list[QueueRow], int]:
        """Items matching ``f``, highest score first, then oldest first."""
        now = now or utcnow()
        where = _filters(f, now)
        total = self.session.scalar(select(func.count()).select_from(ReviewItem).where(*where))
        rows = self.session.execute(
            select(ReviewItem, Listing.external_id, ListingVersion.seller_id, ListingVersion.title)
            .join(Listing, ReviewItem.listing_id == Listing.id)
            .join(ListingVersion, ReviewItem.listing_version_id == ListingVersion.id)
            .where(*where)
            .order_by(*_RISK_ORDER)
            .limit(limit)
            .offset(offset)
        ).all()
        return [QueueRow(r[0], r[1], r[2], r[3]) for r in rows], total or 0

    def neighbours(
        self, f: QueueFilter, item_id: str, now: datetime | None = None
    ) -> tuple[str | None, str | None]:
        """The items just before and just after ``item_id`` in risk order among those matching
        ``f``, however deep in the queue (keyset look-ups; the item itself need not match)."""
        item = self.get(item_id)
        if item is None:
            return None, None
        now = now or utcnow()
        where = _filters(f, now)
        score, created, ident = ReviewItem.score, ReviewItem.created_at, ReviewItem.id
        same_score = score == item.score
        same_time = created == item.created_at
        before = or_(
            score > item.score,
            and_(same_score, or_(created < item.created_at, and_(same_time, ident < item.id))),
        )
        after = or_(
            score < item.score,
            and_(same_score, or_(created > item.created_at, and_(same_time, ident > item.id))),
        )
        prev_id = self.session.scalar(
            select(ident)
            .where(*where, before)
            .order_by(score.asc(), created.desc(), ident.desc())
            .limit(1)
        )
        next_id = self.session.scalar(
            select(ident).where(*where, after).order_by(*_RISK_ORDER).limit(1)
        )
        return prev_id, next_id

    def first_held(self, f: QueueFilter, key_id: str, now: datetime | None = None) -> str | None:
        """The riskiest open item matching ``f`` on which ``key_id`` holds a live claim."""
        now = now or utcnow()
        where = _filters(QueueFilter("claimed", f.brand_id, f.decision, f.min_score), now)
        return self.session.scalar(
            select(ReviewItem.id)
            .where(*where, ReviewItem.claimed_by == key_id)
            .order_by(*_RISK_ORDER)
            .limit(1)
        )

    def row(self, item: ReviewItem) -> QueueRow:
        external_id, seller_id, title = self.session.execute(
            select(Listing.external_id, ListingVersion.seller_id, ListingVersion.title)
            .join(ListingVersion, ListingVersion.listing_id == Listing.id)
            .where(ListingVersion.id == item.listing_version_id)
        ).one()
        return QueueRow(item, external_id, seller_id, title)

    def record(self, item_id: str) -> ItemRecord | None:
        found = self.session.execute(
            select(ReviewItem, Listing, ListingVersion, Verdict)
            .join(Listing, ReviewItem.listing_id == Listing.id)
            .join(ListingVersion, ReviewItem.listing_version_id == ListingVersion.id)
            .join(Verdict, ReviewItem.verdict_id == Verdict.id)
            .where(ReviewItem.id == item_id)
        ).one_or_none()
        if found is None:
            return None
        return ItemRecord(found[0], found[1], found[2], found[3])

    # -- claims ----------------------------------------------------------------------------

    def _take(
        self, item_id: str, key_id: str, now: datetime, lease: timedelta, *, next_only: bool
    ) -> bool:
        """The conditional UPDATE behind every claim; True when this caller now holds it."""
        where: list[ColumnElement[bool]] = [ReviewItem.id == item_id]
        if next_only:
            where += [ReviewItem.status != "decided", _lease_free(now)]
        else:
            where.append(or_(_lease_free(now), ReviewItem.claimed_by == key_id))
        result = cast(
            CursorResult[Any],
            self.session.execute(
                update(ReviewItem)
                .where(*where)
                .values(
                    claimed_by=key_id,
                    claim_expires_at=now + lease,
                    status=case((ReviewItem.status == "decided", "decided"), else_="claimed"),
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            ),
        )
        return result.rowcount == 1

    def claim(
        self, item_id: str, key_id: str, lease: timedelta, now: datetime | None = None
    ) -> tuple[ReviewItem | None, bool]:
        """Claim one item (or extend one's own lease); returns (item, claimed).

        ``(None, False)``: no such item. ``(item, False)``: another key holds a live lease.
        """
        now = now or utcnow()
        won = self._take(item_id, key_id, now, lease, next_only=False)
        return self.get(item_id), won

    def release(self, item_id: str, key_id: str, now: datetime | None = None) -> bool:
        """Give up ``key_id``'s claim on an item (a reviewer moved on without deciding); True
        when there was one. Another key's claim and decided items' labels are left alone."""
        now = now or utcnow()
        result = cast(
            CursorResult[Any],
            self.session.execute(
                update(ReviewItem)
                .where(ReviewItem.id == item_id, ReviewItem.claimed_by == key_id)
                .values(
                    claimed_by=None,
                    claim_expires_at=None,
                    status=case((ReviewItem.status == "decided", "decided"), else_="pending"),
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            ),
        )
        return result.rowcount == 1

    def claim_next(
        self,
        f: QueueFilter,
        key_id: str,
        lease: timedelta,
        now: datetime | None = None,
        attempts: int = 50,
    ) -> ReviewItem | None:
        """Atomically claim the highest-risk pending item matching ``f``; None if there is none."""
        now = now or utcnow()
        where = _filters(QueueFilter("pending", f.brand_id, f.decision, f.min_score), now)
        query = select(ReviewItem.id).where(*where).order_by(*_RISK_ORDER).limit(1)
        if self.session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for _ in range(attempts):
            item_id = self.session.scalar(query)
            if item_id is None:
                return None
            if self._take(item_id, key_id, now, lease, next_only=True):
                return self.get(item_id)
            # Lost a race for that row (SQLite, or a lease taken between SELECT and UPDATE).
        return None

    # -- decisions -------------------------------------------------------------------------

    def decide(
        self,
        item: ReviewItem,
        *,
        key_id: str,
        label: str,
        note: str | None,
        reason_codes: Sequence[str],
        now: datetime | None = None,
    ) -> ReviewDecision:
        """Append a decision, make it the item's label, close the item and release the claim.

        Lock the item first (``get(..., for_update=True)``) so ``previous_label`` is exact.
        """
        now = now or utcnow()
        row = ReviewDecision(
            item_id=item.id,
            listing_id=item.listing_id,
            listing_version_id=item.listing_version_id,
            verdict_id=item.verdict_id,
            reviewer_key_id=key_id,
            label=label,
            previous_label=item.label,
            note=note,
            reason_codes=list(reason_codes),
            created_at=now,
        )
        self.session.add(row)
        item.label = label
        item.status = "decided"
        item.open_listing_id = None
        item.claimed_by = None
        item.claim_expires_at = None
        item.decided_at = now
        item.decided_by = key_id
        item.updated_at = now
        self.session.flush()
        return row

    def decisions(self, item_ids: Sequence[str]) -> dict[str, list[ReviewDecision]]:
        """Decisions per item, oldest first."""
        out: dict[str, list[ReviewDecision]] = {i: [] for i in item_ids}
        if not item_ids:
            return out
        rows = self.session.scalars(
            select(ReviewDecision)
            .where(ReviewDecision.item_id.in_(list(item_ids)))
            .order_by(ReviewDecision.created_at, ReviewDecision.id)
        ).all()
        for row in rows:
            out[row.item_id].append(row)
        return out

    # -- brands, evidence, training --------------------------------------------------------

    def brand_page(
        self,
        brand_id: str,
        *,
        status: str | None,
        limit: int,
        offset: int,
        now: datetime | None = None,
    ) -> tuple[list[QueueRow], int]:
        """A brand's flagged listings (every status unless given), newest first."""
        now = now or utcnow()
        where: list[ColumnElement[bool]] = [ReviewItem.brand_id == brand_id]
        if status is not None:
            where += _filters(QueueFilter(status=status), now)
        total = self.session.scalar(select(func.count()).select_from(ReviewItem).where(*where))
        rows = self.session.execute(
            select(ReviewItem, Listing.external_id, ListingVersion.seller_id, ListingVersion.title)
            .join(Listing, ReviewItem.listing_id == Listing.id)
            .join(ListingVersion, ReviewItem.listing_version_id == ListingVersion.id)
            .where(*where)
            .order_by(ReviewItem.created_at.desc(), ReviewItem.id)
            .limit(limit)
            .offset(offset)
        ).all()
        return [QueueRow(r[0], r[1], r[2], r[3]) for r in rows], total or 0

    def confirmed(self, brand_id: str | None, *, limit: int) -> list[ItemRecord]:
        """Items whose latest label is counterfeit, most recently decided first; one per
        listing (its most recent). At most ``limit`` records."""
        newer = aliased(ReviewItem)
        newer_confirmed = exists().where(
            newer.listing_id == ReviewItem.listing_id,
            newer.label == "counterfeit",
            or_(
                newer.decided_at > ReviewItem.decided_at,
                and_(newer.decided_at == ReviewItem.decided_at, newer.id > ReviewItem.id),
            ),
        )
        query = (
            select(ReviewItem, Listing, ListingVersion, Verdict)
            .join(Listing, ReviewItem.listing_id == Listing.id)
            .join(ListingVersion, ReviewItem.listing_version_id == ListingVersion.id)
            .join(Verdict, ReviewItem.verdict_id == Verdict.id)
            .where(ReviewItem.label == "counterfeit", ~newer_confirmed)
            .order_by(ReviewItem.decided_at.desc(), ReviewItem.id)
            .limit(limit)
        )
        if brand_id is not None:
            query = query.where(ReviewItem.brand_id == brand_id)
        rows = self.session.execute(query).all()
        return [ItemRecord(r[0], r[1], r[2], r[3]) for r in rows]

    def labelled_listings(self) -> list[tuple[ListingVersion, str]]:
        """(snapshot judged, latest label) for items labelled counterfeit or genuine.

        ``unsure`` is left out: it is not a label a model can learn from.
        """
        rows = self.session.execute(
            select(ListingVersion, ReviewItem.label)
            .join(ReviewItem, ReviewItem.listing_version_id == ListingVersion.id)
            .where(ReviewItem.label.in_(("counterfeit", "genuine")))
            .order_by(ReviewItem.decided_at, ReviewItem.id)
        ).all()
        out: dict[str, tuple[ListingVersion, str]] = {}
        for version, label in rows:
            out[version.id] = (version, str(label))
        return list(out.values())

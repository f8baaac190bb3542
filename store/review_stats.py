"""Figures about the review queue: flagged volume per day, reviewer-confirmed precision, time to
decision and queue depth. Aggregation happens in SQL where both backends agree; percentiles of the
time to decision are computed from the first-decision delays of the window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from store.review import _lease_free
from store.tables import Brand, ReviewDecision, ReviewItem, utcnow


@dataclass(frozen=True)
class DayCount:
    day: date
    decision: str
    count: int


@dataclass(frozen=True)
class LabelCount:
    """Items of one group (band or brand) carrying a latest label."""

    group: str | None
    label: str
    count: int


@dataclass(frozen=True)
class QueueDepth:
    pending: int
    claimed: int
    oldest_pending_at: datetime | None


def _day(session: Session, column: InstrumentedAttribute[datetime]) -> ColumnElement[str]:
    """The UTC calendar day of a timestamp, as 'YYYY-MM-DD', on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


class ReviewStatsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def flagged_per_day(self, since: datetime) -> list[DayCount]:
        """Items that entered the queue per UTC day and verdict decision, since ``since``."""
        day = _day(self.session, ReviewItem.created_at).label("day")
        rows = self.session.execute(
            select(day, ReviewItem.decision, func.count())
            .where(ReviewItem.created_at >= since)
            .group_by(day, ReviewItem.decision)
        ).all()
        return [DayCount(date.fromisoformat(str(d)), str(dec), int(n)) for d, dec, n in rows]

    def decided_per_day(self, since: datetime) -> dict[date, int]:
        """Decisions (revisions included) per UTC day since ``since``."""
        day = _day(self.session, ReviewDecision.created_at).label("day")
        rows = self.session.execute(
            select(day, func.count()).where(ReviewDecision.created_at >= since).group_by(day)
        ).all()
        return {date.fromisoformat(str(d)): int(n) for d, n in rows}

    def labels_by_band(self, since: datetime) -> list[LabelCount]:
        """Latest labels of items decided since ``since``, per verdict decision (band)."""
        rows = self.session.execute(
            select(ReviewItem.decision, ReviewItem.label, func.count())
            .where(ReviewItem.label.is_not(None), ReviewItem.decided_at >= since)
            .group_by(ReviewItem.decision, ReviewItem.label)
        ).all()
        return [LabelCount(str(g), str(lab), int(n)) for g, lab, n in rows]

    def labels_by_brand(self, since: datetime) -> list[LabelCount]:
        """Latest labels of items decided since ``since``, per suspected brand (None: no brand)."""
        rows = self.session.execute(
            select(ReviewItem.brand_id, ReviewItem.label, func.count())
            .where(ReviewItem.label.is_not(None), ReviewItem.decided_at >= since)
            .group_by(ReviewItem.brand_id, ReviewItem.label)
        ).all()
        return [LabelCount(g, str(lab), int(n)) for g, lab, n in rows]

    def brand_names(self, brand_ids: list[str]) -> dict[str, str]:
        if not brand_ids:
            return {}
        rows = self.session.execute(select(Brand.id, Brand.name).where(Brand.id.in_(brand_ids)))
        return {i: n for i, n in rows}

    def decision_delays(self, since: datetime) -> list[float]:
        """Seconds from entering the queue to the first decision, for items first decided since
        ``since`` (revisions do not count as time to decision)."""
        first = (
            select(
                ReviewDecision.item_id.label("item_id"),
                func.min(ReviewDecision.created_at).label("first_at"),
            )
            .group_by(ReviewDecision.item_id)
            .subquery()
        )
        rows = self.session.execute(
            select(ReviewItem.created_at, first.c.first_at)
            .join(first, first.c.item_id == ReviewItem.id)
            .where(first.c.first_at >= since)
        ).all()
        out: list[float] = []
        for created, decided in rows:
            decided_at = _aware(decided)
            out.append(max(0.0, (decided_at - created).total_seconds()))
        return out

    def depth(self, now: datetime | None = None) -> QueueDepth:
        """Open items now: pending (unclaimed or lease run out) and claimed (live lease)."""
        now = now or utcnow()
        open_ = ReviewItem.status != "decided"
        pending, oldest = self.session.execute(
            select(func.count(), func.min(ReviewItem.created_at)).where(open_, _lease_free(now))
        ).one()
        claimed = self.session.scalar(
            select(func.count()).select_from(ReviewItem).where(open_, ~_lease_free(now))
        )
        return QueueDepth(int(pending or 0), int(claimed or 0), _aware(oldest) if oldest else None)


def _aware(value: datetime) -> datetime:
    """Aggregates (min over a subquery) bypass the column type on SQLite: make them UTC-aware."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

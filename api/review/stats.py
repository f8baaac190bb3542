"""Review statistics: flagged volume per day, reviewer-confirmed precision per band and brand,
time to decision and queue depth (one read of the store, shaped for the JSON route and the page).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from api.review.schemas import (
    DayVolume,
    Precision,
    QueueDepthOut,
    ReviewStats,
    TimeToDecision,
)
from store.review_stats import LabelCount, ReviewStatsRepository
from store.tables import utcnow

BANDS = ("review", "block")


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def _precision(key: str | None, name: str, counts: dict[str, int]) -> Precision:
    fake, real = counts.get("counterfeit", 0), counts.get("genuine", 0)
    return Precision(
        key=key,
        name=name,
        counterfeit=fake,
        genuine=real,
        unsure=counts.get("unsure", 0),
        precision=fake / (fake + real) if fake + real else None,
    )


def _grouped(rows: list[LabelCount]) -> dict[str | None, dict[str, int]]:
    out: dict[str | None, dict[str, int]] = defaultdict(dict)
    for r in rows:
        out[r.group][r.label] = out[r.group].get(r.label, 0) + r.count
    return out


def review_stats(session: Session, days: int, now: datetime | None = None) -> ReviewStats:
    """Figures over the last ``days`` UTC days (today included)."""
    now = now or utcnow()
    since = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=days - 1)
    repo = ReviewStatsRepository(session)

    flagged: dict[object, dict[str, int]] = defaultdict(dict)
    for row in repo.flagged_per_day(since):
        flagged[row.day][row.decision] = row.count
    decided = repo.decided_per_day(since)
    volume = []
    for i in range(days):
        day = (since + timedelta(days=i)).date()
        volume.append(
            DayVolume(
                day=day,
                review=flagged[day].get("review", 0),
                block=flagged[day].get("block", 0),
                decided=decided.get(day, 0),
            )
        )

    by_band = _grouped(repo.labels_by_band(since))
    bands = [_precision(b, b, by_band.get(b, {})) for b in BANDS]
    by_brand = _grouped(repo.labels_by_brand(since))
    names = repo.brand_names([b for b in by_brand if b is not None])
    brands = [
        _precision(b, names.get(b, "(deleted brand)") if b else "(no brand)", counts)
        for b, counts in by_brand.items()
    ]
    brands.sort(key=lambda p: (-(p.counterfeit + p.genuine + p.unsure), p.name))

    delays = repo.decision_delays(since)
    depth = repo.depth(now)
    return ReviewStats(
        days=days,
        since=since,
        generated_at=now,
        volume=volume,
        precision_by_band=bands,
        precision_by_brand=brands,
        time_to_decision=TimeToDecision(
            decided=len(delays),
            median_seconds=percentile(delays, 50),
            p90_seconds=percentile(delays, 90),
        ),
        queue=QueueDepthOut(
            pending=depth.pending,
            claimed=depth.claimed,
            open=depth.pending + depth.claimed,
            oldest_pending_at=depth.oldest_pending_at,
        ),
    )

"""Shaping service results for the templates: highlighted text, price lines, chart geometry.

Pure functions over the review schemas; no queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from api.review.schemas import (
    DayVolume,
    ReviewImageMatch,
    ReviewItemDetail,
)

#: Reason codes offered with each decision (free text is accepted by the API too).
REASON_CODES: dict[str, list[tuple[str, str]]] = {
    "counterfeit": [
        ("replica_wording", "replica wording"),
        ("logo_misuse", "logo misuse"),
        ("copied_photo", "copied photo"),
        ("price_too_low", "price too low"),
        ("unauthorised_seller", "unauthorised seller"),
    ],
    "genuine": [
        ("authorised_seller", "authorised seller"),
        ("genuine_product", "genuine product"),
        ("different_product", "different product"),
    ],
    "unsure": [
        ("needs_brand_input", "needs brand input"),
        ("insufficient_evidence", "insufficient evidence"),
    ],
}


@dataclass(frozen=True)
class Segment:
    text: str
    kind: str | None = None
    tip: str = ""


def highlight(text: str | None, spans: list[Any], field_name: str) -> list[Segment]:
    """Split ``text`` into plain and highlighted segments from the verdict's spans of one field.

    Overlapping spans: the one starting first (the longer on a tie) wins.
    """
    if not text:
        return []
    chosen = sorted(
        (s for s in spans if s.field == field_name and 0 <= s.start < s.end <= len(text)),
        key=lambda s: (s.start, -(s.end - s.start)),
    )
    out: list[Segment] = []
    pos = 0
    for s in chosen:
        if s.start < pos:
            continue
        if s.start > pos:
            out.append(Segment(text[pos : s.start]))
        tip = f"{s.kind}: {s.label}" + (f" ({s.detail})" if s.detail else "")
        out.append(Segment(text[s.start : s.end], s.kind, tip))
        pos = s.end
    if pos < len(text):
        out.append(Segment(text[pos:]))
    return out


def money(amount: Decimal | float | None, currency: str | None) -> str:
    if amount is None or not currency:
        return "n/a"
    return f"{Decimal(str(amount)).normalize():f} {currency}"


@dataclass(frozen=True)
class PriceLine:
    listing: str
    reference: str
    ratio: float | None
    note: str


def price_line(d: ReviewItemDetail) -> PriceLine:
    """The listing's price against the brand's reference price (the price reason's conversion
    when there is one, else a same-currency ratio)."""
    listing = d.listing.price
    ref = d.brand.reference_price if d.brand else None
    ratio: float | None = None
    note = ""
    reason = next((r for r in d.verdict.reasons if r.signal == "price"), None)
    if reason is not None:
        raw = reason.evidence.get("ratio")
        ratio = float(raw) if isinstance(raw, int | float) else None
        note = reason.detail
    elif listing and ref and listing.currency == ref.currency and ref.amount:
        ratio = float(listing.amount / ref.amount)
    return PriceLine(
        money(listing.amount, listing.currency) if listing else "no price",
        money(ref.amount, ref.currency) if ref else "no reference price",
        ratio,
        note,
    )


@dataclass(frozen=True)
class Region:
    """A box of the listing image that differs from the reference, in fractions of its size."""

    x: float
    y: float
    w: float
    h: float
    label: str


REGION_LABELS = frozenset({"overlay", "watermark", "replaced", "removed", "changed"})


def differing_regions(evidence: dict[str, Any]) -> list[Region]:
    """The verifier's ``differing_regions`` (x0, y0, x1, y1, label) as boxes to draw; anything
    malformed is skipped (evidence is stored JSON)."""
    out = []
    for item in evidence.get("differing_regions") or []:
        try:
            x0, y0, x1, y1 = (min(1.0, max(0.0, float(c))) for c in item[:4])
            label = str(item[4])
        except (TypeError, ValueError, IndexError):
            continue
        if x1 > x0 and y1 > y0:
            kind = label if label in REGION_LABELS else "changed"
            out.append(
                Region(round(x0, 4), round(y0, 4), round(x1 - x0, 4), round(y1 - y0, 4), kind)
            )
    return out


@dataclass
class ImagePair:
    index: int
    url: str | None
    meta: str
    error: str | None
    matches: list[ReviewImageMatch] = field(default_factory=list)
    #: where the listing image differs from its best match (drawn over the listing image)
    regions: list[Region] = field(default_factory=list)


def image_pairs(d: ReviewItemDetail, item_base: str, ref_base: str) -> list[ImagePair]:
    """Each listing image with its matched references (best first), with page-scoped URLs."""
    pairs = []
    for img in d.listing.images:
        meta = " · ".join(
            p
            for p in (
                f"{img.width}x{img.height}" if img.width and img.height else "",
                img.format or "",
                f"{img.bytes:,} B" if img.bytes else "",
            )
            if p
        )
        error = None
        if img.error:
            error = str(img.error.get("detail") or img.error.get("code") or "unreadable")
        matches = sorted(
            (m for m in d.verdict.image_matches if m.image_index == img.index),
            key=lambda m: (m.distance, -m.confidence),
        )
        pairs.append(
            ImagePair(
                img.index,
                f"{item_base}/images/{img.index}" if img.image_url else None,
                meta,
                error,
                [
                    m.model_copy(update={"image_url": f"{ref_base}/{m.brand_id}/{m.reference_id}"})
                    for m in matches
                ],
                differing_regions(matches[0].evidence) if matches else [],
            )
        )
    return pairs


def evidence_items(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    """Flat, readable key/value pairs of a match's or reason's evidence."""
    out = []
    for k, v in evidence.items():
        if isinstance(v, float):
            text = f"{v:.3g}"
        elif isinstance(v, dict):
            text = ", ".join(f"{a}={_short(b)}" for a, b in v.items())
        elif isinstance(v, list):
            text = "; ".join(_short(b) for b in v)
        else:
            text = str(v)
        out.append((k.replace("_", " "), text))
    return out


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return str(value)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


# -- the volume chart (inline SVG, drawn by the template from this geometry) ----------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str
    tip: str


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass
class Chart:
    width: int
    height: int
    left: int
    top: int
    plot_height: int
    bars: list[Bar]
    line: str
    dots: list[tuple[float, float, str]]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    empty: bool


def _nice_max(value: int) -> int:
    if value <= 4:
        return 4
    for step in (5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000):
        if value <= step * 4:
            return -(-value // step) * step
    return value


def volume_chart(volume: list[DayVolume], width: int = 1300, height: int = 240) -> Chart:
    """Stacked bars (entered the queue: review, block) per day and a line of decisions per day."""
    left, right, top, bottom = 40, 10, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max([v.review + v.block for v in volume] + [v.decided for v in volume] + [0])
    ymax = _nice_max(top_value)
    n = max(len(volume), 1)
    slot = plot_w / n
    bar_w = max(2.0, slot * 0.7)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / ymax

    bars: list[Bar] = []
    points: list[tuple[float, float, str]] = []
    for i, v in enumerate(volume):
        x = left + i * slot + (slot - bar_w) / 2
        day = v.day.isoformat()
        if v.review:
            bars.append(
                Bar(
                    x,
                    y(v.review),
                    bar_w,
                    top + plot_h - y(v.review),
                    "review",
                    f"{day}: {v.review} flagged for review",
                )
            )
        if v.block:
            base = y(v.review)
            bars.append(
                Bar(
                    x,
                    y(v.review + v.block),
                    bar_w,
                    base - y(v.review + v.block),
                    "block",
                    f"{day}: {v.block} flagged to block",
                )
            )
        points.append((left + i * slot + slot / 2, y(v.decided), f"{day}: {v.decided} decisions"))
    line = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
    y_ticks = [Tick(y(ymax * f), f"{round(ymax * f)}") for f in (0, 0.25, 0.5, 0.75, 1)]
    every = max(1, round(n / 8))
    x_ticks = [
        Tick(left + i * slot + slot / 2, v.day.strftime("%m-%d"))
        for i, v in enumerate(volume)
        if (n - 1 - i) % every == 0
    ]
    return Chart(
        width, height, left, top, plot_h, bars, line, points, y_ticks, x_ticks, top_value == 0
    )

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.brands.schemas import Money
from api.ingest.schemas import ImageMatchOut, ReasonOut, SpanOut
from api.validation import RequestModel

Status = Literal["pending", "claimed", "decided"]
Label = Literal["counterfeit", "genuine", "unsure"]
ReasonCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"\S")
]


class ReviewItemOut(BaseModel):
    id: str
    listing_id: str = Field(description="the marketplace's listing id")
    seller_id: str
    title: str
    score: float
    decision: Literal["review", "block"]
    brand_id: str | None
    status: Status = Field(description="a claim whose lease ran out counts as pending")
    claimed_by: str | None = Field(description="key id holding a live claim, else null")
    claim_expires_at: datetime | None
    label: Label | None = Field(description="the latest decision's label")
    decided_at: datetime | None
    verdict_id: str
    listing_version_id: str
    created_at: datetime
    updated_at: datetime


class ReviewQueue(BaseModel):
    items: list[ReviewItemOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class DecisionIn(RequestModel):
    model_config = ConfigDict(extra="forbid")
    label: Label
    note: Annotated[str, StringConstraints(max_length=5000)] | None = None
    reason_codes: list[ReasonCode] = Field(default_factory=list, max_length=20)
    verdict_id: str | None = Field(
        default=None,
        description="the verdict the reviewer looked at; if the listing was rescored since, "
        "the decision is refused (409 item_changed) instead of judging unseen content",
    )


class DecisionOut(BaseModel):
    id: int
    label: Label
    previous_label: Label | None
    note: str | None
    reason_codes: list[str]
    reviewer_key_id: str
    verdict_id: str
    listing_version_id: str
    created_at: datetime


class ListingImageOut(BaseModel):
    index: int
    sha256: str | None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    quality: float | None = None
    hashes: dict[str, str] = Field(
        default_factory=dict, description="64-bit perceptual hashes (hex) per view"
    )
    url: str | None = Field(default=None, description="where the marketplace had it")
    error: dict[str, Any] | None = None
    image_url: str | None = Field(description="the stored bytes (null if none were stored)")


class ListingSnapshotOut(BaseModel):
    listing_id: str
    version_id: str
    seller_id: str
    title: str
    description: str | None
    price: Money | None
    brand_claimed: str | None
    category: str | None
    images: list[ListingImageOut]
    created_at: datetime


class ReviewImageMatch(ImageMatchOut):
    image_url: str = Field(description="the matched brand reference image")


class ReviewVerdict(BaseModel):
    verdict_id: str
    score: float
    decision: Literal["allow", "review", "block"]
    brand_id: str | None
    reasons: list[ReasonOut]
    image_matches: list[ReviewImageMatch]
    spans: list[SpanOut]
    model_version: str
    catalog_version: int
    scored_at: datetime


class BrandContext(BaseModel):
    id: str
    name: str
    reference_price: Money | None
    seller_authorised: bool = Field(description="the listing's seller is an authorised seller")


class LaterVersion(BaseModel):
    """A version of the listing scored after the one under review (the seller edited it)."""

    version_id: str
    title: str
    score: float
    decision: Literal["allow", "review", "block"]
    scored_at: datetime


class ReviewItemDetail(ReviewItemOut):
    listing: ListingSnapshotOut
    verdict: ReviewVerdict
    brand: BrandContext | None = Field(description="the suspected brand, if it still exists")
    decisions: list[DecisionOut] = Field(description="every decision on this item, oldest first")
    later_versions: list[LaterVersion] = Field(
        default_factory=list,
        description="versions of the listing scored after the one under review, oldest first: "
        "a flagged edit updates the open item, an edit that scored allow leaves it as flagged",
    )


class FlaggedListing(BaseModel):
    item_id: str
    listing_id: str
    seller_id: str
    title: str
    score: float
    decision: Literal["review", "block"]
    status: Status
    outcome: Label | None = Field(description="the latest reviewer label, null until decided")
    decided_at: datetime | None
    created_at: datetime


class FlaggedList(BaseModel):
    items: list[FlaggedListing]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class CaseImage(BaseModel):
    index: int
    sha256: str | None
    hashes: dict[str, str]


class CaseDecision(BaseModel):
    label: Label
    previous_label: Label | None
    reviewer_key_id: str
    note: str | None
    reason_codes: list[str]
    created_at: datetime


class CaseListing(BaseModel):
    listing_id: str
    seller_id: str
    brand_id: str | None
    version_id: str
    title: str
    description: str | None
    price: Money | None
    images: list[CaseImage]
    score: float
    decision: str
    verdict_id: str
    reasons: list[ReasonOut]
    scored_at: datetime
    confirmed_at: datetime | None
    decisions: list[CaseDecision]


class CaseLink(BaseModel):
    a: str = Field(description="listing id")
    b: str = Field(description="listing id (of another seller)")
    kind: Literal["image", "text"]
    evidence: dict[str, Any]


class Case(BaseModel):
    case_id: str
    sellers: list[str]
    listings: list[CaseListing]
    links: list[CaseLink]


class CaseReport(BaseModel):
    cases: list[Case]
    total: int = Field(description="cases in the considered listings")
    limit: int
    offset: int
    next_offset: int | None
    listings_considered: int
    listings_cap: int = Field(description="at most this many confirmed listings are linked")
    truncated: bool = Field(description="more confirmed listings exist than the cap")
    link_distance: int = Field(description="Hamming distance at or under which images link")


class DayVolume(BaseModel):
    day: date = Field(description="UTC calendar day")
    review: int = Field(description="items that entered the queue with decision review")
    block: int = Field(description="items that entered the queue with decision block")
    decided: int = Field(description="reviewer decisions made that day (revisions included)")


class Precision(BaseModel):
    key: str | None = Field(description="the band (review/block) or the brand id (null: none)")
    name: str = Field(description="what to show for the group")
    counterfeit: int
    genuine: int
    unsure: int
    precision: float | None = Field(
        description="counterfeit / (counterfeit + genuine); null when neither was decided"
    )


class TimeToDecision(BaseModel):
    decided: int = Field(description="items first decided in the window")
    median_seconds: float | None
    p90_seconds: float | None


class QueueDepthOut(BaseModel):
    pending: int
    claimed: int
    open: int
    oldest_pending_at: datetime | None


class ReviewStats(BaseModel):
    days: int
    since: datetime = Field(description="start of the window (UTC midnight)")
    generated_at: datetime
    volume: list[DayVolume] = Field(description="one entry per day of the window, oldest first")
    precision_by_band: list[Precision] = Field(description="items decided in the window")
    precision_by_brand: list[Precision] = Field(description="items decided in the window")
    time_to_decision: TimeToDecision
    queue: QueueDepthOut

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from api.brands.schemas import Money
from api.validation import RequestModel

Id = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"\S")
]


def _exactly_one_schema(schema: dict[str, Any]) -> None:
    """Say in the OpenAPI document what the validator below enforces: one of the two, not null."""
    schema["oneOf"] = [
        {"required": [name], "properties": {name: {"type": "string"}}} for name in ("data", "url")
    ]


class ImageIn(RequestModel):
    """One listing image: inline base64 ``data`` or a ``url`` (when URL fetching is on)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_schema)
    data: str | None = Field(default=None, description="base64 of the image bytes")
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageIn:
        if (self.data is None) == (self.url is None):
            raise ValueError("give exactly one of 'data' (base64) or 'url'")
        return self


class ListingIn(RequestModel):
    model_config = ConfigDict(extra="forbid")
    listing_id: Id
    seller_id: Id
    title: Annotated[str, StringConstraints(max_length=1000)]
    description: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    price: Money | None = None
    brand: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        default=None, description="the brand the listing claims"
    )
    category: Annotated[str, StringConstraints(max_length=200)] | None = None
    images: list[ImageIn] = Field(default_factory=list)


class BatchIn(BaseModel):
    """A batch: each item is validated on its own (as a ``ListingIn``), so that an item that is
    not a valid listing gets its own ``validation_error`` entry and the others are scored."""

    model_config = ConfigDict(extra="forbid")
    listings: list[Any] = Field(
        min_length=1,
        json_schema_extra={
            "items": {
                "anyOf": [{"$ref": "#/components/schemas/ListingIn"}, {}],
                "description": "a listing, as POST /v1/listings/score takes it; an item that "
                "is not one gets its own validation_error entry in the results",
            }
        },
    )


class ReasonOut(BaseModel):
    signal: str
    detail: str
    contribution: float = Field(description="this signal's term in the score's logit")
    evidence: dict[str, Any] = Field(default_factory=dict)


class ImageMatchOut(BaseModel):
    image_index: int
    brand_id: str
    reference_id: str
    distance: int
    variant: str
    confidence: float
    evidence: dict[str, Any] = Field(default_factory=dict)


class SpanOut(BaseModel):
    field: str
    kind: str
    start: int
    end: int
    text: str
    label: str
    detail: str


class Verdict(BaseModel):
    listing_id: str
    score: float = Field(ge=0, le=1)
    decision: Literal["allow", "review", "block"]
    brand_id: str | None
    reasons: list[ReasonOut]
    image_matches: list[ImageMatchOut]
    spans: list[SpanOut] = Field(default_factory=list)
    model_version: str
    catalog_version: int
    verdict_id: str
    scored_at: datetime
    cached: bool = Field(
        default=False, description="true when this exact content was scored before (a retry)"
    )


class FieldProblem(BaseModel):
    field: str
    message: str


class BatchItemError(BaseModel):
    listing_id: str | None
    index: int
    error: str
    detail: str
    fields: list[FieldProblem] | None = Field(
        default=None, description="for validation_error: each field and what is wrong with it"
    )


class BatchOut(BaseModel):
    results: list[Verdict | BatchItemError]


class HistoryItem(BaseModel):
    version_id: str
    created_at: datetime
    title: str
    verdict: Verdict


class ListingHistory(BaseModel):
    listing_id: str
    versions: list[HistoryItem]

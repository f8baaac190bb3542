from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from api.validation import RequestModel


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


# JSON true/false is not a number (lax mode would take it as 1/0); 3 and 8.0 still are.
Threshold = Annotated[float, Field(ge=0, le=1), BeforeValidator(_not_bool)]
Distance = Annotated[int, Field(ge=0, le=32), BeforeValidator(_not_bool)]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"\S")
]
Alias = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"\S")
]
SellerId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"\S")
]
Currency = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{3}$")
]


class Money(RequestModel):
    model_config = ConfigDict(extra="forbid")
    amount: Annotated[
        Decimal,
        PlainSerializer(float, return_type=float, when_used="json"),
        # What the constraints below mean, said in JSON Schema (which has no max_digits).
        WithJsonSchema(
            {"type": "number", "exclusiveMinimum": 0, "maximum": 1e12, "multipleOf": 0.0001}
        ),
    ] = Field(gt=0, le=Decimal("1e12"), max_digits=18, decimal_places=4)
    currency: Currency = Field(description="ISO 4217 code, e.g. USD")


class BrandCreate(RequestModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    aliases: list[Alias] = Field(default_factory=list, max_length=100)
    authorized_sellers: list[SellerId] = Field(default_factory=list, max_length=100_000)
    reference_price: Money | None = None
    review_threshold: Threshold | None = None
    block_threshold: Threshold | None = None
    match_distance: Distance | None = None

    @field_validator("aliases", "authorized_sellers")
    @classmethod
    def _dedupe(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(values))


class BrandPatch(RequestModel):
    """Only the fields present are changed; send ``null`` to clear an optional field."""

    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    aliases: list[Alias] | None = Field(default=None, max_length=100)
    authorized_sellers: list[SellerId] | None = Field(default=None, max_length=100_000)
    reference_price: Money | None = None
    review_threshold: Threshold | None = None
    block_threshold: Threshold | None = None
    match_distance: Distance | None = None


class BrandOut(BaseModel):
    id: str
    name: str
    aliases: list[str]
    authorized_sellers: list[str]
    reference_price: Money | None
    review_threshold: float | None
    block_threshold: float | None
    match_distance: int | None
    reference_count: int | None = None
    created_at: datetime
    updated_at: datetime


class BrandList(BaseModel):
    brands: list[BrandOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class HashInfo(BaseModel):
    algorithm: str
    version: int
    count: int


class ReferenceOut(BaseModel):
    id: str
    brand_id: str
    filename: str | None
    content_type: str | None
    product: str | None
    sku: str | None
    sha256: str
    format: str
    width: int
    height: int
    byte_size: int
    quality: float
    created_at: datetime
    status: Literal["created", "existing"] | None = Field(
        default=None, description="on upload: whether this request stored it or it existed"
    )
    hashes: HashInfo | None = None
    image_url: str


class UploadError(BaseModel):
    index: int
    filename: str | None
    error: str
    detail: str


class UploadResult(BaseModel):
    references: list[ReferenceOut]
    errors: list[UploadError]


class ReferenceList(BaseModel):
    references: list[ReferenceOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Alias = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
SellerId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Currency = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{3}$")
]


class Money(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")] = Field(
        gt=0, le=Decimal("1e12"), max_digits=18, decimal_places=4
    )
    currency: Currency = Field(description="ISO 4217 code, e.g. USD")


class BrandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    aliases: list[Alias] = Field(default_factory=list, max_length=100)
    authorized_sellers: list[SellerId] = Field(default_factory=list, max_length=100_000)
    reference_price: Money | None = None
    review_threshold: float | None = Field(default=None, ge=0, le=1)
    block_threshold: float | None = Field(default=None, ge=0, le=1)
    match_distance: int | None = Field(default=None, ge=0, le=32)

    @field_validator("aliases", "authorized_sellers")
    @classmethod
    def _dedupe(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(values))


class BrandPatch(BaseModel):
    """Only the fields present are changed; send ``null`` to clear an optional field."""

    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    aliases: list[Alias] | None = Field(default=None, max_length=100)
    authorized_sellers: list[SellerId] | None = Field(default=None, max_length=100_000)
    reference_price: Money | None = None
    review_threshold: float | None = Field(default=None, ge=0, le=1)
    block_threshold: float | None = Field(default=None, ge=0, le=1)
    match_distance: int | None = Field(default=None, ge=0, le=32)


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

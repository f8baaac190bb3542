"""Typed SQLAlchemy 2.0 tables. The schema changes only through Alembic migrations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: An auto-incrementing 64-bit key that SQLite also accepts as its rowid alias.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
    }


class ApiKey(Base):
    """An API key. Only a SHA-256 digest of the secret is stored; ``prefix`` finds the row."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    brand_id: Mapped[str | None] = mapped_column(
        ForeignKey("brands.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class Brand(Base):
    __tablename__ = "brands"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    #: Case-folded name, unique, so "Nike" and "NIKE" cannot both exist.
    name_key: Mapped[str] = mapped_column(String(200), unique=True)
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    authorized_sellers: Mapped[list[str]] = mapped_column(JSON, default=list)
    reference_price_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    reference_price_currency: Mapped[str | None] = mapped_column(String(3))
    #: Per-brand overrides of the service-wide decision thresholds and image match distance.
    review_threshold: Mapped[float | None] = mapped_column(Float)
    block_threshold: Mapped[float | None] = mapped_column(Float)
    match_distance: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    references: Mapped[list[Reference]] = relationship(
        back_populates="brand", lazy="raise", passive_deletes=True
    )


class Reference(Base):
    """An official product image of a brand. The bytes live in the blob store under ``sha256``."""

    __tablename__ = "reference_images"
    __table_args__ = (
        UniqueConstraint("brand_id", "sha256", name="uq_reference_images_brand_sha256"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))
    product: Mapped[str | None] = mapped_column(String(200))
    sku: Mapped[str | None] = mapped_column(String(100))
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    byte_size: Mapped[int] = mapped_column(Integer)
    quality: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    brand: Mapped[Brand] = relationship(back_populates="references", lazy="raise")
    hashes: Mapped[list[ReferenceHash]] = relationship(
        back_populates="reference", lazy="raise", passive_deletes=True
    )


class ReferenceHash(Base):
    """One perceptual hash of one variant of a reference (signed 64-bit storage of a uint64)."""

    __tablename__ = "reference_hashes"
    __table_args__ = (Index("ix_reference_hashes_algorithm", "algorithm", "algorithm_version"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    reference_id: Mapped[str] = mapped_column(
        ForeignKey("reference_images.id", ondelete="CASCADE"), index=True
    )
    brand_id: Mapped[str] = mapped_column(String(36))
    algorithm: Mapped[str] = mapped_column(String(32))
    algorithm_version: Mapped[int] = mapped_column(Integer)
    variant: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(BigInteger)

    reference: Mapped[Reference] = relationship(back_populates="hashes", lazy="raise")


class CatalogEvent(Base):
    """Append-only log of reference additions and removals; its highest id is the catalog version.

    Workers poll ``id > last_seen`` to update their in-memory index incrementally.
    """

    __tablename__ = "catalog_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    op: Mapped[str] = mapped_column(String(16))
    reference_id: Mapped[str] = mapped_column(String(36), index=True)
    brand_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Append-only audit trail: who did what to which object, when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_key_id: Mapped[str | None] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    brand_id: Mapped[str | None] = mapped_column(String(36), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text)


class Listing(Base):
    """A marketplace listing as fakeguard knows it: its latest scoring, and its history."""

    __tablename__ = "listings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    seller_id: Mapped[str] = mapped_column(String(200), index=True)
    latest_version_id: Mapped[str | None] = mapped_column(String(36))
    latest_score: Mapped[float | None] = mapped_column(Float)
    latest_decision: Mapped[str | None] = mapped_column(String(16), index=True)
    latest_brand_id: Mapped[str | None] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ListingVersion(Base):
    """A snapshot of a listing's content as it was scored; edits add versions."""

    __tablename__ = "listing_versions"
    __table_args__ = (
        UniqueConstraint("listing_id", "content_hash", name="uq_listing_versions_content"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    listing_id: Mapped[str] = mapped_column(
        ForeignKey("listings.id", ondelete="CASCADE"), index=True
    )
    content_hash: Mapped[str] = mapped_column(String(64))
    seller_id: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    price_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    price_currency: Mapped[str | None] = mapped_column(String(3))
    brand_claimed: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(200))
    images: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Verdict(Base):
    """The score, decision and reasons given for one listing version."""

    __tablename__ = "verdicts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    listing_id: Mapped[str] = mapped_column(
        ForeignKey("listings.id", ondelete="CASCADE"), index=True
    )
    listing_version_id: Mapped[str] = mapped_column(
        ForeignKey("listing_versions.id", ondelete="CASCADE"), unique=True
    )
    score: Mapped[float] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(16), index=True)
    brand_id: Mapped[str | None] = mapped_column(String(36), index=True)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    image_matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    spans: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    model_version: Mapped[str] = mapped_column(String(64))
    catalog_version: Mapped[int] = mapped_column(BigInteger)
    scored_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ReviewItem(Base):
    """A flagged listing version waiting for (or given) a reviewer's judgement.

    At most one item per listing is open: ``open_listing_id`` holds the listing id while the item
    is pending or claimed and NULL once decided, and is unique (NULLs never collide).
    A claim is a lease: ``claimed_by`` holds it until ``claim_expires_at``.
    """

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_items_queue", "status", "score", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    listing_id: Mapped[str] = mapped_column(
        ForeignKey("listings.id", ondelete="CASCADE"), index=True
    )
    open_listing_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    listing_version_id: Mapped[str] = mapped_column(
        ForeignKey("listing_versions.id", ondelete="CASCADE")
    )
    verdict_id: Mapped[str] = mapped_column(ForeignKey("verdicts.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(16))
    brand_id: Mapped[str | None] = mapped_column(String(36), index=True)
    #: pending | claimed | decided (a claim whose lease ran out counts as pending).
    status: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(36))
    claim_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    #: The latest decision's label (counterfeit | genuine | unsure), if any.
    label: Mapped[str | None] = mapped_column(String(16), index=True)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewDecision(Base):
    """Append-only: one reviewer judgement of one review item (later rows revise earlier ones)."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(
        ForeignKey("review_items.id", ondelete="CASCADE"), index=True
    )
    listing_id: Mapped[str] = mapped_column(String(36), index=True)
    listing_version_id: Mapped[str] = mapped_column(String(36))
    verdict_id: Mapped[str] = mapped_column(String(36))
    reviewer_key_id: Mapped[str] = mapped_column(String(36), index=True)
    label: Mapped[str] = mapped_column(String(16))
    previous_label: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    reason_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ReviewerSession(Base):
    """A signed-in reviewer's browser session for the /review pages.

    Only the SHA-256 of the session token is stored (the token lives in the browser's cookie);
    a session ends at ``expires_at``, at sign-out, or when its key is revoked.
    """

    __tablename__ = "reviewer_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)

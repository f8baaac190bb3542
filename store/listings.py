"""Scored listings: the listing, its content snapshots (versions) and one verdict per version."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.tables import Listing, ListingVersion, Verdict, utcnow


@dataclass(frozen=True)
class Snapshot:
    external_id: str
    content_hash: str
    seller_id: str
    title: str
    description: str | None
    price_amount: Decimal | None
    price_currency: str | None
    brand_claimed: str | None
    category: str | None
    images: list[dict[str, Any]]


@dataclass(frozen=True)
class VerdictRecord:
    score: float
    decision: str
    brand_id: str | None
    reasons: list[dict[str, Any]]
    image_matches: list[dict[str, Any]]
    spans: list[dict[str, Any]]
    model_version: str
    catalog_version: int


class ListingRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, external_id: str) -> Listing | None:
        return self.session.scalar(select(Listing).where(Listing.external_id == external_id))

    def existing_verdict(self, external_id: str, content_hash: str) -> Verdict | None:
        """The verdict already given to exactly this content of this listing (retries, resends)."""
        return self.session.scalar(
            select(Verdict)
            .join(ListingVersion, Verdict.listing_version_id == ListingVersion.id)
            .join(Listing, ListingVersion.listing_id == Listing.id)
            .where(Listing.external_id == external_id, ListingVersion.content_hash == content_hash)
        )

    def record(self, snap: Snapshot, verdict: VerdictRecord) -> tuple[Verdict, bool]:
        """Store a snapshot and its verdict; returns (verdict, created).

        If the same content of the same listing was stored meanwhile (a concurrent retry), the
        stored verdict is returned and nothing is written twice.
        """
        try:
            with self.session.begin_nested():
                listing = self.get(snap.external_id)
                if listing is None:
                    listing = Listing(external_id=snap.external_id, seller_id=snap.seller_id)
                    self.session.add(listing)
                    self.session.flush()
                version = ListingVersion(
                    listing_id=listing.id,
                    content_hash=snap.content_hash,
                    seller_id=snap.seller_id,
                    title=snap.title,
                    description=snap.description,
                    price_amount=snap.price_amount,
                    price_currency=snap.price_currency,
                    brand_claimed=snap.brand_claimed,
                    category=snap.category,
                    images=snap.images,
                )
                self.session.add(version)
                self.session.flush()
                row = Verdict(
                    listing_id=listing.id,
                    listing_version_id=version.id,
                    score=verdict.score,
                    decision=verdict.decision,
                    brand_id=verdict.brand_id,
                    reasons=verdict.reasons,
                    image_matches=verdict.image_matches,
                    spans=verdict.spans,
                    model_version=verdict.model_version,
                    catalog_version=verdict.catalog_version,
                )
                self.session.add(row)
                listing.seller_id = snap.seller_id
                listing.latest_version_id = version.id
                listing.latest_score = verdict.score
                listing.latest_decision = verdict.decision
                listing.latest_brand_id = verdict.brand_id
                listing.updated_at = utcnow()
                self.session.flush()
                return row, True
        except IntegrityError:
            existing = self.existing_verdict(snap.external_id, snap.content_hash)
            if existing is None:
                raise
            return existing, False

    def history(self, external_id: str) -> list[tuple[ListingVersion, Verdict]]:
        rows = self.session.execute(
            select(ListingVersion, Verdict)
            .join(Verdict, Verdict.listing_version_id == ListingVersion.id)
            .join(Listing, ListingVersion.listing_id == Listing.id)
            .where(Listing.external_id == external_id)
            .order_by(ListingVersion.created_at, ListingVersion.id)
        ).all()
        return [(r[0], r[1]) for r in rows]

    def version(self, version_id: str) -> ListingVersion | None:
        return self.session.get(ListingVersion, version_id)

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(Listing)) or 0

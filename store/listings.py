"""Scored listings: the listing, its content snapshots (versions) and one verdict per version."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.tables import Base, Listing, ListingVersion, Verdict, new_id, utcnow

#: Values per ``IN (...)`` list: well under every backend's bound-parameter limit.
IN_CHUNK = 500

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """One executemany INSERT of ``rows`` (all with the same keys) into ``model``'s table.

    Core, not the ORM's bulk path: for the one or few rows of a single scoring its
    bookkeeping cost several times the statement.
    """
    if rows:
        session.execute(cast(Table, model.__table__).insert(), list(rows))


def update_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """One executemany UPDATE by primary key ``id``; every row sets the same other columns."""
    if not rows:
        return
    table = cast(Table, model.__table__)
    names = [k for k in rows[0] if k != "id"]
    statement = (
        table.update()
        .where(table.c.id == bindparam("row_id"))
        .values({name: bindparam(f"new_{name}") for name in names})
    )
    session.execute(
        statement,
        [{"row_id": r["id"], **{f"new_{name}": r[name] for name in names}} for r in rows],
    )


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


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    """A stored verdict's values (what the scoring path reads back), without an ORM instance.

    The scoring path writes and reads verdicts with Core statements: building and tracking an
    ORM object per verdict cost more than the SQL that stored it.
    """

    id: str
    listing_id: str
    listing_version_id: str
    score: float
    decision: str
    brand_id: str | None
    reasons: list[dict[str, Any]]
    image_matches: list[dict[str, Any]]
    spans: list[dict[str, Any]]
    model_version: str
    catalog_version: int
    scored_at: datetime

    @classmethod
    def of(cls, row: Verdict) -> StoredVerdict:
        return cls(**{name: getattr(row, name) for name in _VERDICT_COLUMNS})


_VERDICT_COLUMNS: tuple[str, ...] = tuple(StoredVerdict.__dataclass_fields__)
_LISTINGS = cast(Table, Listing.__table__)
_VERSIONS = cast(Table, ListingVersion.__table__)
_VERDICTS = cast(Table, Verdict.__table__)

# The scoring path's statements, built once (``IN`` lists as expanding parameters): building
# and cache-keying a statement per call cost as much as running it on SQLite.
_EXISTING = (
    select(
        _LISTINGS.c.external_id,
        _VERSIONS.c.content_hash,
        *(_VERDICTS.c[name] for name in _VERDICT_COLUMNS),
    )
    .select_from(
        _VERDICTS.join(_VERSIONS, _VERDICTS.c.listing_version_id == _VERSIONS.c.id).join(
            _LISTINGS, _VERSIONS.c.listing_id == _LISTINGS.c.id
        )
    )
    .where(
        _LISTINGS.c.external_id.in_(bindparam("external_ids", expanding=True)),
        _VERSIONS.c.content_hash.in_(bindparam("content_hashes", expanding=True)),
    )
)
_LISTING_IDS = select(_LISTINGS.c.id, _LISTINGS.c.external_id).where(
    _LISTINGS.c.external_id.in_(bindparam("external_ids", expanding=True))
)
_INSERT_LISTINGS = _LISTINGS.insert()
_INSERT_VERSIONS = _VERSIONS.insert()
_INSERT_VERDICTS = _VERDICTS.insert()


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

    def existing_verdicts(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredVerdict]:
        """:meth:`existing_verdict` for many ``(external_id, content_hash)`` pairs at once.

        One query per :data:`IN_CHUNK` listings whatever the batch size (Core: no ORM objects).
        """
        wanted = set(keys)
        found: dict[tuple[str, str], StoredVerdict] = {}
        ordered = sorted(wanted)
        conn = self.session.connection()
        for part in chunks(ordered):
            rows = conn.execute(
                _EXISTING,
                {
                    "external_ids": sorted({external_id for external_id, _ in part}),
                    "content_hashes": sorted({content_hash for _, content_hash in part}),
                },
            ).all()
            for external_id, content_hash, *values in rows:
                if (external_id, content_hash) in wanted:
                    found[(external_id, content_hash)] = StoredVerdict(*values)
        return found

    def record_many(
        self, items: Sequence[tuple[Snapshot, VerdictRecord]]
    ) -> list[tuple[StoredVerdict, bool]]:
        """Store many snapshots and their verdicts with a fixed number of statements.

        Returns ``(verdict, created)`` per item, in order. Each table is written with one
        executemany statement. The same content of the same listing
        given twice in one call is stored once (the later copies answer ``created=False`` with
        the first one's verdict); several contents of one listing become versions in the order
        given, the last one the listing's latest. Nothing is checked against concurrent
        writers: content stored meanwhile by another transaction raises ``IntegrityError``
        (unique listing id, unique content per listing), and callers fall back to
        :meth:`record` one item at a time, which answers such an item with the stored verdict.
        """
        if not items:
            return []
        now = utcnow()
        conn = self.session.connection()
        external_ids = sorted({snap.external_id for snap, _ in items})
        listing_ids: dict[str, str] = {}
        for part in chunks(external_ids):
            for listing_id, external_id in conn.execute(_LISTING_IDS, {"external_ids": part}):
                listing_ids[external_id] = listing_id
        known = set(listing_ids)
        for external_id in external_ids:
            listing_ids.setdefault(external_id, new_id())

        out: list[tuple[StoredVerdict, bool]] = []
        first: dict[tuple[str, str], StoredVerdict] = {}
        versions: list[dict[str, Any]] = []
        verdicts: list[StoredVerdict] = []
        latest: dict[str, dict[str, Any]] = {}
        for i, (snap, record) in enumerate(items):
            key = (snap.external_id, snap.content_hash)
            if key in first:
                out.append((first[key], False))
                continue
            listing_id = listing_ids[snap.external_id]
            # Distinct, ordered timestamps: history is ordered by (created_at, id).
            at = now + timedelta(microseconds=i)
            version_id = new_id()
            versions.append(
                {
                    "id": version_id,
                    "listing_id": listing_id,
                    "content_hash": snap.content_hash,
                    "seller_id": snap.seller_id,
                    "title": snap.title,
                    "description": snap.description,
                    "price_amount": snap.price_amount,
                    "price_currency": snap.price_currency,
                    "brand_claimed": snap.brand_claimed,
                    "category": snap.category,
                    "images": snap.images,
                    "created_at": at,
                }
            )
            row = StoredVerdict(
                id=new_id(),
                listing_id=listing_id,
                listing_version_id=version_id,
                score=record.score,
                decision=record.decision,
                brand_id=record.brand_id,
                reasons=record.reasons,
                image_matches=record.image_matches,
                spans=record.spans,
                model_version=record.model_version,
                catalog_version=record.catalog_version,
                scored_at=at,
            )
            verdicts.append(row)
            first[key] = row
            out.append((row, True))
            latest[snap.external_id] = {
                "id": listing_id,
                "seller_id": snap.seller_id,
                "latest_version_id": version_id,
                "latest_score": record.score,
                "latest_decision": record.decision,
                "latest_brand_id": record.brand_id,
                "updated_at": at,
            }
        new = [
            {"external_id": external_id, "created_at": now, **values}
            for external_id, values in latest.items()
            if external_id not in known
        ]
        changed = [values for external_id, values in latest.items() if external_id in known]
        if new:
            conn.execute(_INSERT_LISTINGS, new)
        update_rows(self.session, Listing, changed)
        conn.execute(_INSERT_VERSIONS, versions)
        conn.execute(
            _INSERT_VERDICTS,
            [{name: getattr(v, name) for name in _VERDICT_COLUMNS} for v in verdicts],
        )
        return out

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

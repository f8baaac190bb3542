"""Brand reference images, their perceptual hashes, and the catalog event log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.tables import CatalogEvent, Reference, ReferenceHash


def to_signed64(value: int) -> int:
    """Store an unsigned 64-bit hash in a signed BIGINT column."""
    return value - (1 << 64) if value >= (1 << 63) else value


def to_unsigned64(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


@dataclass(frozen=True)
class HashRow:
    reference_id: str
    brand_id: str
    variant: str
    value: int  # unsigned


@dataclass(frozen=True)
class CatalogChange:
    event_id: int
    op: str
    reference_id: str
    brand_id: str


class ReferenceRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find_by_sha(self, brand_id: str, sha256: str) -> Reference | None:
        return self.session.scalar(
            select(Reference).where(Reference.brand_id == brand_id, Reference.sha256 == sha256)
        )

    def add(
        self,
        reference: Reference,
        hashes: Sequence[tuple[str, int]],
        *,
        algorithm: str,
        algorithm_version: int,
    ) -> tuple[Reference, bool]:
        """Insert a reference with its hashes; returns (row, created).

        If the same bytes are already in the brand's catalog, the existing row is returned.
        """
        existing = self.find_by_sha(reference.brand_id, reference.sha256)
        if existing is not None:
            return existing, False
        try:
            with self.session.begin_nested():
                self.session.add(reference)
                self.session.flush()
                self._store_hashes(reference, hashes, algorithm, algorithm_version, "add")
        except IntegrityError:
            # A concurrent upload of the same bytes won the race.
            existing = self.find_by_sha(reference.brand_id, reference.sha256)
            if existing is None:
                raise
            return existing, False
        return reference, True

    def replace_hashes(
        self,
        reference: Reference,
        hashes: Sequence[tuple[str, int]],
        *,
        algorithm: str,
        algorithm_version: int,
    ) -> None:
        """Swap a reference's stored hashes for new ones (a new algorithm version)."""
        self.session.execute(
            delete(ReferenceHash).where(ReferenceHash.reference_id == reference.id)
        )
        self._store_hashes(reference, hashes, algorithm, algorithm_version, "update")

    def _store_hashes(
        self,
        reference: Reference,
        hashes: Sequence[tuple[str, int]],
        algorithm: str,
        algorithm_version: int,
        op: str,
    ) -> None:
        """Insert a reference's hashes and log the catalog event workers follow."""
        self.session.add_all(
            ReferenceHash(
                reference_id=reference.id,
                brand_id=reference.brand_id,
                algorithm=algorithm,
                algorithm_version=algorithm_version,
                variant=variant,
                value=to_signed64(value),
            )
            for variant, value in hashes
        )
        self.session.add(
            CatalogEvent(op=op, reference_id=reference.id, brand_id=reference.brand_id)
        )
        self.session.flush()

    def without_hashes(self, *, algorithm: str, algorithm_version: int) -> list[Reference]:
        """References that have no hash of this algorithm version (need a rehash)."""
        has = select(ReferenceHash.reference_id).where(
            ReferenceHash.algorithm == algorithm,
            ReferenceHash.algorithm_version == algorithm_version,
        )
        return list(self.session.scalars(select(Reference).where(Reference.id.not_in(has))))

    def all(self) -> list[Reference]:
        return list(self.session.scalars(select(Reference).order_by(Reference.created_at)))

    def get(self, brand_id: str, reference_id: str) -> Reference | None:
        return self.session.scalar(
            select(Reference).where(Reference.id == reference_id, Reference.brand_id == brand_id)
        )

    def get_any(self, reference_id: str) -> Reference | None:
        return self.session.get(Reference, reference_id)

    def page(self, brand_id: str, *, limit: int, offset: int) -> tuple[list[Reference], int]:
        total = (
            self.session.scalar(
                select(func.count()).select_from(Reference).where(Reference.brand_id == brand_id)
            )
            or 0
        )
        rows = self.session.scalars(
            select(Reference)
            .where(Reference.brand_id == brand_id)
            .order_by(Reference.created_at, Reference.id)
            .limit(limit)
            .offset(offset)
        ).all()
        return list(rows), total

    def delete(self, reference: Reference) -> None:
        self.session.execute(
            delete(ReferenceHash).where(ReferenceHash.reference_id == reference.id)
        )
        self.session.add(
            CatalogEvent(op="remove", reference_id=reference.id, brand_id=reference.brand_id)
        )
        self.session.delete(reference)
        self.session.flush()

    # --- the catalog as the index sees it ---------------------------------------------------

    def catalog_version(self) -> int:
        return self.session.scalar(select(func.max(CatalogEvent.id))) or 0

    def changes_since(
        self, event_id: int, limit: int = 10_000, also: Sequence[int] = ()
    ) -> list[CatalogChange]:
        """Events after ``event_id`` (at most ``limit``), and the events ``also`` names (holes
        below it that a later commit may have filled), in id order."""
        condition = CatalogEvent.id > event_id
        if also:
            condition = or_(condition, CatalogEvent.id.in_(list(also)))
        rows = self.session.execute(
            select(
                CatalogEvent.id, CatalogEvent.op, CatalogEvent.reference_id, CatalogEvent.brand_id
            )
            .where(condition)
            .order_by(CatalogEvent.id)
            .limit(limit)
        ).all()
        return [CatalogChange(r[0], r[1], r[2], r[3]) for r in rows]

    def event_ids_between(self, low: int, high: int) -> list[int]:
        """The ids of the events with ``low < id <= high``, ascending."""
        return list(
            self.session.scalars(
                select(CatalogEvent.id)
                .where(CatalogEvent.id > low, CatalogEvent.id <= high)
                .order_by(CatalogEvent.id)
            )
        )

    def hashes(
        self,
        *,
        algorithm: str,
        algorithm_version: int,
        reference_ids: Sequence[str] | None = None,
    ) -> list[HashRow]:
        """All stored hashes of one algorithm version (optionally for some references only)."""
        query = select(
            ReferenceHash.reference_id,
            ReferenceHash.brand_id,
            ReferenceHash.variant,
            ReferenceHash.value,
        ).where(
            ReferenceHash.algorithm == algorithm,
            ReferenceHash.algorithm_version == algorithm_version,
        )
        if reference_ids is not None:
            if not reference_ids:
                return []
            query = query.where(ReferenceHash.reference_id.in_(reference_ids))
        return [HashRow(r[0], r[1], r[2], to_unsigned64(r[3])) for r in self.session.execute(query)]

    def index_entries(self) -> list[tuple[str, str, str]]:
        """(reference id, brand id, sha256) of every reference: what the index should hold."""
        rows = self.session.execute(
            select(Reference.id, Reference.brand_id, Reference.sha256)
        ).all()
        return [(r[0], r[1], r[2]) for r in rows]

    def index_entries_for(self, reference_ids: Sequence[str]) -> list[tuple[str, str, str]]:
        if not reference_ids:
            return []
        rows = self.session.execute(
            select(Reference.id, Reference.brand_id, Reference.sha256).where(
                Reference.id.in_(reference_ids)
            )
        ).all()
        return [(r[0], r[1], r[2]) for r in rows]

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(Reference)) or 0

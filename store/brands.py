"""Brands: names (unique case-insensitively), aliases, authorised sellers, reference price."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.tables import Brand, CatalogEvent, Reference


class BrandNameTaken(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"a brand named {name!r} already exists (names are case-insensitive)")
        self.name = name


def name_key(name: str) -> str:
    return " ".join(name.casefold().split())


class BrandRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, brand: Brand) -> Brand:
        brand.name_key = name_key(brand.name)
        self._check_name_free(brand.name, None)
        self.session.add(brand)
        try:
            with self.session.begin_nested():
                self.session.flush()
        except IntegrityError as exc:
            raise BrandNameTaken(brand.name) from exc
        return brand

    def _check_name_free(self, name: str, except_id: str | None) -> None:
        query = select(Brand.id).where(Brand.name_key == name_key(name))
        if except_id is not None:
            query = query.where(Brand.id != except_id)
        if self.session.scalar(query) is not None:
            raise BrandNameTaken(name)

    def rename(self, brand: Brand, name: str) -> None:
        self._check_name_free(name, brand.id)
        brand.name, brand.name_key = name, name_key(name)
        try:
            with self.session.begin_nested():
                self.session.flush()
        except IntegrityError as exc:
            raise BrandNameTaken(name) from exc

    def get(self, brand_id: str) -> Brand | None:
        return self.session.get(Brand, brand_id)

    def page(
        self, *, limit: int, offset: int, only_ids: Sequence[str] | None = None
    ) -> tuple[list[Brand], int]:
        query = select(Brand)
        count = select(func.count()).select_from(Brand)
        if only_ids is not None:
            query = query.where(Brand.id.in_(only_ids))
            count = count.where(Brand.id.in_(only_ids))
        rows = self.session.scalars(
            query.order_by(Brand.name_key).limit(limit).offset(offset)
        ).all()
        return list(rows), self.session.scalar(count) or 0

    def all(self) -> list[Brand]:
        return list(self.session.scalars(select(Brand).order_by(Brand.name_key)).all())

    def stamp(self) -> tuple[int, str]:
        """Changes whenever a brand is created, changed or deleted: the number of brands and a
        digest of every brand's id and last update.

        Not the latest ``updated_at``: an update that commits after a later-stamped one, or
        that comes from a replica whose clock is behind, would not move it, and the workers
        would keep the old authorised sellers, prices and thresholds for good.
        """
        rows = self.session.execute(select(Brand.id, Brand.updated_at).order_by(Brand.id)).all()
        digest = hashlib.blake2b(digest_size=16)
        for brand_id, updated_at in rows:
            digest.update(f"{brand_id}|{updated_at.isoformat() if updated_at else ''}\n".encode())
        return len(rows), digest.hexdigest()

    def match_distances(self) -> dict[str, int]:
        """Per-brand image match distance overrides."""
        rows = self.session.execute(
            select(Brand.id, Brand.match_distance).where(Brand.match_distance.is_not(None))
        ).all()
        return {r[0]: int(r[1]) for r in rows if r[1] is not None}

    def delete(self, brand: Brand) -> list[str]:
        """Delete a brand with its references and keys; logs removals for index workers.

        Returns the ids of the references removed.
        """
        ref_ids = self.session.scalars(
            select(Reference.id).where(Reference.brand_id == brand.id)
        ).all()
        for ref_id in ref_ids:
            self.session.add(CatalogEvent(op="remove", reference_id=ref_id, brand_id=brand.id))
        self.session.delete(brand)
        self.session.flush()
        return list(ref_ids)

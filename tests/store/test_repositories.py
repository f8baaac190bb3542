from __future__ import annotations

import pytest

from store.brands import BrandNameTaken, BrandRepository
from store.db import make_engine, make_session_factory, session_scope
from store.keys import ApiKeyRepository, parse_key
from store.references import ReferenceRepository, to_signed64, to_unsigned64
from store.tables import Brand, Reference


def test_signed_storage_round_trip() -> None:
    for v in (0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 0xDEADBEEFCAFEBABE):
        s = to_signed64(v)
        assert -(1 << 63) <= s < (1 << 63)
        assert to_unsigned64(s) == v


def test_catalog_events_and_hashes(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        brand = BrandRepository(s).create(Brand(name="Nike", aliases=[], authorized_sellers=[]))
        repo = ReferenceRepository(s)
        assert repo.catalog_version() == 0
        ref, created = repo.add(
            Reference(
                brand_id=brand.id,
                sha256="a" * 64,
                format="JPEG",
                width=1,
                height=1,
                byte_size=1,
                quality=50.0,
            ),
            [("orig", (1 << 64) - 1), ("mirror", 5)],
            algorithm="dct64",
            algorithm_version=1,
        )
        assert created
        dup, created = repo.add(
            Reference(
                brand_id=brand.id,
                sha256="a" * 64,
                format="JPEG",
                width=1,
                height=1,
                byte_size=1,
                quality=50.0,
            ),
            [("orig", 1)],
            algorithm="dct64",
            algorithm_version=1,
        )
        assert not created and dup.id == ref.id
        v1 = repo.catalog_version()
        assert v1 > 0
        rows = repo.hashes(algorithm="dct64", algorithm_version=1)
        assert sorted(r.value for r in rows) == [5, (1 << 64) - 1]
        assert repo.hashes(algorithm="dct64", algorithm_version=2) == []
        repo.delete(ref)
        changes = repo.changes_since(0)
        assert [(c.op, c.reference_id) for c in changes] == [("add", ref.id), ("remove", ref.id)]
        assert repo.changes_since(v1)[0].op == "remove"
        assert repo.hashes(algorithm="dct64", algorithm_version=1) == []
    engine.dispose()


def test_brand_names_and_keys(db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        brands = BrandRepository(s)
        brands.create(Brand(name="Louis Vuitton", aliases=[], authorized_sellers=[]))
        with pytest.raises(BrandNameTaken):
            brands.create(Brand(name="louis  VUITTON", aliases=[], authorized_sellers=[]))
        keys = ApiKeyRepository(s)
        row, key = keys.create("reviewer")
        assert keys.authenticate(key) is not None
        assert keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert parse_key("not-a-key") is None
        keys.revoke(row.id)
        assert keys.authenticate(key) is None
    engine.dispose()

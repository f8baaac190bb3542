"""Every worker's in-memory catalog follows the database: at once in the worker that took the
change, within a refresh interval in the others, and repaired by reconciliation."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import delete

from api.app import create_app
from api.catalog import CatalogService
from store.db import make_engine
from store.tables import CatalogEvent
from tests.api.conftest import Api, make_settings
from tests.support.images import product_photo


def _catalog(client: TestClient) -> CatalogService:
    catalog: CatalogService = client.app.state.ctx.catalog  # type: ignore[attr-defined]
    return catalog


def _upload(api: Api, brand_id: str, seeds: list[int]) -> list[str]:
    r = api.call(
        "POST",
        f"/v1/brands/{brand_id}/references",
        files=[("files", (f"{s}.jpg", product_photo(s, 300), "image/jpeg")) for s in seeds],
    )
    assert r.status_code == 201, r.text
    return [x["id"] for x in r.json()["references"]]


def test_upload_is_searchable_in_the_same_worker_at_once(api: Api) -> None:
    brand = api.brand("Nike")
    catalog = _catalog(api.client)
    assert len(catalog.index) == 0
    ids = _upload(api, brand["id"], [1, 2])
    assert all(i in catalog.index for i in ids)
    assert catalog.index.n_hashes > 20
    api.call("DELETE", f"/v1/brands/{brand['id']}/references/{ids[0]}")
    assert ids[0] not in catalog.index and ids[1] in catalog.index
    api.call("DELETE", f"/v1/brands/{brand['id']}")
    assert len(catalog.index) == 0


def test_other_worker_follows_by_refresh_and_start_load(api: Api, tmp_path: Path) -> None:
    brand = api.brand("Nike")
    first = _upload(api, brand["id"], [3])
    with TestClient(create_app(api.settings)) as other:
        theirs = _catalog(other)
        assert first[0] in theirs.index  # loaded at start
        second = _upload(api, brand["id"], [4, 5])
        assert second[0] not in theirs.index
        assert theirs.refresh() == 2
        assert all(i in theirs.index for i in second)
        api.call("DELETE", f"/v1/brands/{brand['id']}/references/{first[0]}")
        theirs.refresh()
        assert first[0] not in theirs.index
        assert theirs.index.version == _catalog(api.client).index.version or theirs.refresh() == 0
        assert theirs.refresh() == 0  # nothing new: only the version is compared


def test_background_refresh_picks_up_changes_within_seconds(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path, catalog_refresh_seconds=0.2)
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        api = Api(a, settings)
        brand = api.brand("Nike")
        ids = _upload(api, brand["id"], [6])
        deadline = time.monotonic() + 10
        while ids[0] not in _catalog(b).index and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ids[0] in _catalog(b).index


def test_reconcile_repairs_a_missed_event(api: Api) -> None:
    brand = api.brand("Nike")
    with TestClient(create_app(api.settings)) as other:
        theirs = _catalog(other)
        ids = _upload(api, brand["id"], [7])
        engine = make_engine(api.settings.db_url)
        with engine.begin() as conn:  # an event lost to a sequence gap, simulated
            conn.execute(delete(CatalogEvent))
        engine.dispose()
        theirs.refresh()
        assert ids[0] not in theirs.index
        assert theirs.reconcile() == (1, 0)
        assert ids[0] in theirs.index


def test_rolled_back_upload_never_reaches_the_index(api: Api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import store.audit

    brand = api.brand("Nike")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("audit store down")

    monkeypatch.setattr(store.audit.AuditRepository, "record", boom)
    r = api.call(
        "POST",
        f"/v1/brands/{brand['id']}/references",
        files=[("files", ("x.jpg", product_photo(8, 300), "image/jpeg"))],
    )
    assert r.status_code == 500
    assert r.json()["error"] == "internal_error"
    monkeypatch.undo()
    assert len(_catalog(api.client).index) == 0
    assert api.call("GET", f"/v1/brands/{brand['id']}/references").json()["total"] == 0


def test_rehash_recomputes_stale_hashes_and_workers_follow(api: Api) -> None:
    from sqlalchemy import update

    from api.catalog import rehash_references
    from detector import images
    from store.db import make_session_factory
    from store.tables import ReferenceHash

    brand = api.brand("Nike")
    ids = _upload(api, brand["id"], [9, 10, 11])
    older = images.COMPATIBLE_VERSIONS[0]
    engine = make_engine(api.settings.db_url)
    with engine.begin() as conn:  # as if hashed by older algorithm versions
        conn.execute(
            update(ReferenceHash)
            .where(ReferenceHash.reference_id == ids[0])
            .values(algorithm_version=min(images.COMPATIBLE_VERSIONS) - 1)
        )
        conn.execute(  # a compatible version: searchable, flagged as stale
            update(ReferenceHash)
            .where(ReferenceHash.reference_id == ids[2])
            .values(algorithm_version=older)
        )
    with TestClient(create_app(api.settings)) as other:
        theirs = _catalog(other)
        assert ids[0] not in theirs.index and theirs.missing_hashes == 1
        assert ids[2] in theirs.index and theirs.stale == {ids[2]}
        assert theirs.status()["references_with_old_hashes"] == 1
        metrics = other.get("/metrics").text
        assert "fakeguard_catalog_references_old_hashes 1.0" in metrics
        assert "fakeguard_catalog_references_without_hashes 1.0" in metrics
        ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
        report = rehash_references(make_session_factory(engine), ctx.blobs, progress=False)
        assert report.rehashed == 2 and report.failed == []
        theirs.refresh()
        assert all(i in theirs.index for i in ids)
        assert theirs.stale == set()
        assert (
            rehash_references(make_session_factory(engine), ctx.blobs, progress=False).rehashed == 0
        )
    engine.dispose()

"""Every worker's in-memory catalog follows the database: at once in the worker that took the
change, within a refresh interval in the others, and repaired by reconciliation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, insert, select

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


def _events(url: str, reference_ids: list[str]) -> list[dict[str, object]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(CatalogEvent).where(CatalogEvent.reference_id.in_(reference_ids))
        ).all()
    engine.dispose()
    return [dict(r._mapping) for r in rows]


def _delete_events(url: str, ids: list[int]) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(delete(CatalogEvent).where(CatalogEvent.id.in_(ids)))
    engine.dispose()


def _insert_events(url: str, rows: list[dict[str, object]]) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(CatalogEvent), rows)
    engine.dispose()


def test_an_event_committed_after_a_later_one_is_applied(api: Api) -> None:
    """Event ids are handed out before commit: 11 can become readable after 12 has been
    applied. The hole is asked for again at each refresh until it fills."""
    brand = api.brand("Nike")
    with TestClient(create_app(api.settings)) as other:
        theirs = _catalog(other)
        first = _upload(api, brand["id"], [21])
        second = _upload(api, brand["id"], [22])
        late = _events(api.settings.db_url, first)
        assert len(late) == 1
        _delete_events(api.settings.db_url, [int(late[0]["id"])])  # not committed yet
        assert theirs.refresh() == 1
        assert second[0] in theirs.index and first[0] not in theirs.index
        assert int(late[0]["id"]) in theirs.gaps
        assert theirs.refresh() == 0  # the hole is asked for, nothing has filled it
        _insert_events(api.settings.db_url, late)  # the slow transaction commits
        assert theirs.refresh() == 1
        assert first[0] in theirs.index
        assert not theirs.gaps
        assert theirs.refresh() == 0


def test_a_hole_is_given_up_after_the_wait(api: Api) -> None:
    brand = api.brand("Nike")
    with TestClient(create_app(api.settings)) as other:
        theirs = _catalog(other)
        first = _upload(api, brand["id"], [23])
        _upload(api, brand["id"], [24])
        late = _events(api.settings.db_url, first)
        _delete_events(api.settings.db_url, [int(late[0]["id"])])  # rolled back, for good
        theirs.refresh()
        assert int(late[0]["id"]) in theirs.gaps
        theirs.gap_wait_seconds = 0.0
        assert theirs.refresh() == 0
        assert not theirs.gaps


def test_holes_below_the_version_at_start_are_watched(api: Api) -> None:
    """A worker starting while an upload's transaction is still open loads the catalog
    without it, and applies its event once it commits."""
    brand = api.brand("Nike")
    first = _upload(api, brand["id"], [25])
    second = _upload(api, brand["id"], [26])
    late = _events(api.settings.db_url, first)
    _delete_events(api.settings.db_url, [int(late[0]["id"])])
    with TestClient(create_app(api.settings)) as other:
        theirs = _catalog(other)
        assert second[0] in theirs.index
        assert set(theirs.gaps) == {int(late[0]["id"])}
        theirs.removed_locally(first)  # as loaded while its transaction was still open
        assert theirs.refresh() == 0
        _insert_events(api.settings.db_url, late)
        assert theirs.refresh() == 1
        assert first[0] in theirs.index
        assert not theirs.gaps


def test_concurrent_transactions_committing_out_of_order(api: Api) -> None:
    """The real race on PostgreSQL: a transaction holding a lower event id commits after a
    later one was applied."""
    if not api.settings.db_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: ids commit in order")
    brand = api.brand("Nike")
    with TestClient(create_app(api.settings)) as other:
        theirs = _catalog(other)
        slow_ref = _upload(api, brand["id"], [27])
        fast_ref = _upload(api, brand["id"], [28])
        events = {e["reference_id"]: e for e in _events(api.settings.db_url, slow_ref + fast_ref)}
        _delete_events(api.settings.db_url, [int(e["id"]) for e in events.values()])
        theirs.refresh()
        assert slow_ref[0] not in theirs.index and fast_ref[0] not in theirs.index
        engine = make_engine(api.settings.db_url)
        fields = ("op", "reference_id", "brand_id", "created_at")
        slow = engine.connect()
        slow_tx = slow.begin()
        slow_id = slow.execute(
            insert(CatalogEvent).returning(CatalogEvent.id),
            [{k: events[slow_ref[0]][k] for k in fields}],
        ).scalar_one()
        with engine.begin() as fast:  # takes the next id and commits first
            fast.execute(insert(CatalogEvent), [{k: events[fast_ref[0]][k] for k in fields}])
        assert theirs.refresh() == 1
        assert fast_ref[0] in theirs.index and slow_ref[0] not in theirs.index
        assert slow_id in theirs.gaps  # with the two deleted ids, holes for good
        metrics = other.get("/metrics").text
        assert f"fakeguard_catalog_event_gaps {float(len(theirs.gaps))}" in metrics
        slow_tx.commit()
        slow.close()
        engine.dispose()
        assert theirs.refresh() == 1
        assert slow_ref[0] in theirs.index
        assert slow_id not in theirs.gaps


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


def test_a_brand_match_distance_change_reaches_every_worker(api: Api) -> None:
    """A brand's own match distance changes without a catalog event: the worker that took the
    change applies it at once, the others at their next refresh."""
    brand = api.brand("Nike")
    _upload(api, brand["id"], [29])
    default = _catalog(api.client).index.default_distance
    with TestClient(create_app(api.settings)) as other:
        theirs = _catalog(other)
        assert theirs.index.brand_distance(brand["id"]) == default
        r = api.call("PATCH", f"/v1/brands/{brand['id']}", json={"match_distance": 4})
        assert r.status_code == 200, r.text
        assert _catalog(api.client).index.brand_distance(brand["id"]) == 4
        assert theirs.refresh() == 0  # no catalog event, yet the distance is read
        assert theirs.index.brand_distance(brand["id"]) == 4
        api.call("PATCH", f"/v1/brands/{brand['id']}", json={"match_distance": None})
        assert _catalog(api.client).index.brand_distance(brand["id"]) == default
        theirs.refresh()
        assert theirs.index.brand_distance(brand["id"]) == default

from __future__ import annotations

from sqlalchemy import select

from store.db import make_engine
from store.tables import ApiKey
from tests.api.conftest import ADMIN_KEY, Api


def test_key_is_shown_once_and_stored_hashed(api: Api) -> None:
    created = api.call("POST", "/v1/keys", json={"role": "ingest", "name": "pipeline"})
    assert created.status_code == 201
    body = created.json()
    assert set(body) >= {"id", "key"} and body["key"].startswith("fg_")
    engine = make_engine(api.settings.db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(ApiKey.key_hash, ApiKey.prefix)).all()
    engine.dispose()
    stored = " ".join(h + p for h, p in rows)
    assert body["key"] not in stored and ADMIN_KEY not in stored
    listed = api.call("GET", "/v1/keys").json()
    assert body["key"] not in str(listed)
    assert {k["role"] for k in listed["keys"]} == {"admin", "ingest"}


def test_brand_key_rules(api: Api) -> None:
    r = api.call("POST", "/v1/keys", json={"role": "brand"})
    assert r.status_code == 422 and r.json()["error"] == "brand_required"
    r = api.call("POST", "/v1/keys", json={"role": "brand", "brand_id": "nope"})
    assert r.status_code == 404
    brand = api.brand("Nike")
    r = api.call("POST", "/v1/keys", json={"role": "ingest", "brand_id": brand["id"]})
    assert r.status_code == 422 and r.json()["error"] == "brand_not_allowed"
    r = api.call("POST", "/v1/keys", json={"role": "superuser"})
    assert r.status_code == 422


def test_bootstrap_key_is_idempotent(api: Api) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    # A second app (another worker) with the same bootstrap key: still one admin key.
    with TestClient(create_app(api.settings)) as second:
        assert second.get("/v1/keys", headers=api.as_(ADMIN_KEY)).status_code == 200
    admins = [k for k in api.call("GET", "/v1/keys").json()["keys"] if k["role"] == "admin"]
    assert len(admins) == 1


def test_deleting_a_brand_removes_its_keys(api: Api) -> None:
    brand = api.brand("Nike")
    key = api.key("brand", brand["id"])
    assert api.call("GET", f"/v1/brands/{brand['id']}", key=key).status_code == 200
    assert api.call("DELETE", f"/v1/brands/{brand['id']}").status_code == 204
    assert api.call("GET", "/v1/brands", key=key).status_code == 401

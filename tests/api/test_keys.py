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


def test_revoked_key_stops_at_once_here_and_within_the_cache_time_in_other_workers(
    api: Api,
) -> None:
    import time

    from fastapi.testclient import TestClient

    from api.app import create_app

    key = api.key("ingest")
    created = api.call("GET", "/v1/keys").json()["keys"]
    key_id = next(k["id"] for k in created if k["role"] == "ingest")
    path = "/v1/listings/not-scored"
    ttl = 1.0
    other_settings = api.settings.model_copy(update={"auth_cache_seconds": ttl})
    with TestClient(create_app(other_settings), raise_server_exceptions=False) as other:
        assert api.call("GET", path, key=key).status_code == 404  # known here ...
        assert other.get(path, headers=api.as_(key)).status_code == 404  # ... and there
        assert api.call("DELETE", f"/v1/keys/{key_id}").status_code == 200
        revoked = time.monotonic()
        assert api.call("GET", path, key=key).status_code == 401  # the revoking worker: at once
        time.sleep(max(0.0, revoked + ttl + 0.1 - time.monotonic()))
        assert other.get(path, headers=api.as_(key)).status_code == 401  # the other: within ttl


def test_key_cache_expires_and_can_be_off() -> None:
    from api.keycache import KeyCache

    now = [100.0]
    cache: KeyCache[str] = KeyCache(2.0, capacity=2, clock=lambda: now[0])
    cache.put("a", "alice")
    assert cache.get("a") == "alice"
    now[0] += 1.9
    assert cache.get("a") == "alice"
    now[0] += 0.1
    assert cache.get("a") is None  # expired at exactly ttl
    cache.put("a", "alice")
    cache.put("b", "bob")
    cache.put("c", "carol")  # over capacity: the old entries go
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, None, "carol")
    cache.clear()
    assert cache.get("c") is None
    off: KeyCache[str] = KeyCache(0.0, clock=lambda: now[0])
    off.put("a", "alice")
    assert off.get("a") is None

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.api.conftest import Api


def test_healthz_and_readyz(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    r = api.client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"


def test_readyz_503_when_schema_not_migrated(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    with TestClient(create_app(settings)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["error"] == "not_ready"
        assert "migrations" in r.json()["detail"]
        assert client.get("/healthz").status_code == 200


def test_unknown_route_has_error_shape(api: Api) -> None:
    r = api.client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = api.client.put("/healthz")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


def test_openapi_documents_errors(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    upload = spec["paths"]["/v1/brands/{brand_id}/references"]["post"]
    assert {"201", "401", "403", "404", "422"} <= set(upload["responses"])
    assert upload["description"]

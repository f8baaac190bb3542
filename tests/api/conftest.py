from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from store.keys import generate_key

ADMIN_KEY = generate_key()


@dataclass
class Api:
    """A TestClient with helpers to act as a given key."""

    client: TestClient
    settings: Settings

    def as_(self, key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}

    def call(self, method: str, path: str, key: str | None = ADMIN_KEY, **kw: Any) -> Any:
        headers = {**self.as_(key), **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def brand(self, name: str = "Nike", **fields: Any) -> dict[str, Any]:
        r = self.call("POST", "/v1/brands", json={"name": name, **fields})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def key(self, role: str, brand_id: str | None = None) -> str:
        payload: dict[str, Any] = {"role": role}
        if brand_id:
            payload["brand_id"] = brand_id
        r = self.call("POST", "/v1/keys", json=payload)
        assert r.status_code == 201, r.text
        key: str = r.json()["key"]
        return key


_MODELS: dict[str, Path] = {}


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small text model trained once per test session on the synthetic seed corpus."""
    if "dir" not in _MODELS:
        from training.train_text import ensure_default_model

        path = tmp_path_factory.mktemp("models")
        ensure_default_model(path, n=3000, log=lambda *_: None, progress=False)
        _MODELS["dir"] = path
    return _MODELS["dir"]


def make_settings(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    overrides.setdefault("models_dir", _MODELS.get("dir", tmp_path / "no-models"))
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        bootstrap_admin_key=ADMIN_KEY,
        **overrides,
    )


@pytest.fixture
def api(db_url: str, tmp_path: Path, models_dir: Path) -> Iterator[Api]:
    settings = make_settings(db_url, tmp_path, models_dir=models_dir)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Api(client, settings)

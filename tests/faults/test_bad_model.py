"""A corrupt or mismatched text model is promoted while the service runs.

Workers poll the registry (``FAKEGUARD_MODEL_POLL_SECONDS``); a newly active version that cannot
be loaded is refused and the worker keeps serving the model it had, says so in its log and in
``/readyz``'s checks, and picks up the next good promotion.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from detector.artifacts import (
    CARD_FILE,
    MODEL_FILE,
    REGISTRY_FILE,
    ArtifactError,
    active_version,
    read_registry,
    text_dir,
    write_json_atomic,
)
from tests.api.conftest import ADMIN_KEY, make_settings
from tests.faults.conftest import count_rows
from training.registry import promote

POLL = 0.2


@pytest.fixture
def models(models_dir: Path, tmp_path: Path) -> Path:
    """A copy of the session's models directory this test may damage."""
    target = tmp_path / "models"
    shutil.copytree(models_dir, target)
    return target


@pytest.fixture
def client(db_url: str, models: Path, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(db_url, tmp_path, models_dir=models, model_poll_seconds=POLL)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def copy_version(
    models: Path,
    new: str,
    edit_card: Callable[[dict[str, Any]], None] | None = None,
    source: str | None = None,
) -> Path:
    """A new version directory made from ``source`` (default: the active version), its card
    renamed and optionally edited."""
    old = source or active_version(models)
    assert old is not None
    vdir = text_dir(models) / new
    shutil.copytree(text_dir(models) / old, vdir)
    card = json.loads((vdir / CARD_FILE).read_text())
    card["version"] = new
    if edit_card is not None:
        edit_card(card)
    write_json_atomic(vdir / CARD_FILE, card)
    return vdir


def activate(models: Path, version: str) -> None:
    """Point the registry at ``version`` without promote()'s checks (a hand edit, another tool,
    or a file damaged after it was promoted)."""
    registry = read_registry(models)
    write_json_atomic(
        text_dir(models) / REGISTRY_FILE,
        {"active": version, "history": [*registry["history"], registry["active"]], "events": []},
    )


def corrupt_bytes(models: Path) -> str:
    vdir = copy_version(models, "v-corrupt")
    data = bytearray((vdir / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (vdir / MODEL_FILE).write_bytes(bytes(data))
    return "v-corrupt"


def truncated_but_checksummed(models: Path) -> str:
    """A damaged zip whose card carries its (new) sha256: only the load itself can tell."""
    import hashlib

    vdir = copy_version(models, "v-truncated")
    data = (vdir / MODEL_FILE).read_bytes()[:4096]
    (vdir / MODEL_FILE).write_bytes(data)
    card = json.loads((vdir / CARD_FILE).read_text())
    card["artifact"]["sha256"] = hashlib.sha256(data).hexdigest()
    write_json_atomic(vdir / CARD_FILE, card)
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(vdir / MODEL_FILE)
    return "v-truncated"


def other_library_versions(models: Path) -> str:
    def edit(card: dict[str, Any]) -> None:
        card["libraries"]["scikit-learn"] = "0.24.2"

    copy_version(models, "v-sklearn-0.24", edit)
    return "v-sklearn-0.24"


def other_schema(models: Path) -> str:
    def edit(card: dict[str, Any]) -> None:
        card["model_schema"] = -1

    copy_version(models, "v-schema", edit)
    return "v-schema"


def missing_directory(_models: Path) -> str:
    return "v-never-built"


BAD: dict[str, Callable[[Path], str]] = {
    "corrupt_bytes": corrupt_bytes,
    "truncated_zip": truncated_but_checksummed,
    "library_mismatch": other_library_versions,
    "schema_mismatch": other_schema,
    "missing_version": missing_directory,
}


def text_model(verdict: dict[str, Any]) -> str:
    """The text model's version in a verdict's ``model_version`` (``text:<v>+combiner:<c>``)."""
    part: str = verdict["model_version"].split("+")[0]
    return part.removeprefix("text:")


def score(client: TestClient, key: str, n: int) -> dict[str, Any]:
    r = client.post(
        "/v1/listings/score",
        json={"listing_id": f"M-{n}", "seller_id": "s", "title": f"1:1 replica watch {n}"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ingest_key(client: TestClient) -> str:
    r = client.post(
        "/v1/keys", json={"role": "ingest"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


@pytest.mark.parametrize("bad", sorted(BAD))
def test_a_bad_model_promoted_while_serving_is_refused(
    client: TestClient,
    models: Path,
    db_url: str,
    bad: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = ingest_key(client)
    good = active_version(models)
    assert text_model(score(client, key, 0)) == good
    version = BAD[bad](models)
    with pytest.raises(ArtifactError):  # the registry command would not have promoted it
        promote(models, version)
    activate(models, version)
    time.sleep(POLL * 2)
    with caplog.at_level(logging.ERROR, logger="fakeguard"):
        for n in range(1, 4):  # polled, refused, and still serving the model it had
            assert text_model(score(client, key, n)) == good
            time.sleep(POLL)
    assert any(version in r.getMessage() for r in caplog.records), caplog.text
    ready = client.get("/readyz")
    assert ready.status_code == 200  # still serving, with the previous model
    assert version in ready.json()["checks"]["model"] and good in ready.json()["checks"]["model"]
    metrics = client.get("/metrics").text
    assert f'fakeguard_model_info{{version="{good}"}} 1.0' in metrics
    assert count_rows(db_url)["verdicts"] == 4

    # the next good promotion is picked up
    copy_version(models, "v-good-2", source=good)
    promote(models, "v-good-2")
    deadline = time.monotonic() + 10
    while text_model(score(client, key, 100)) != "v-good-2":
        assert time.monotonic() < deadline, "the good promotion was not picked up"
        time.sleep(POLL)
    assert client.get("/readyz").json()["checks"]["model"] == "v-good-2"


def test_a_worker_started_while_the_active_model_is_bad(
    db_url: str, models: Path, tmp_path: Path
) -> None:
    """A worker (re)started after the bad promotion has no model of its own to keep: it serves
    the newest version of the registry's history that loads; with none, 503 + Retry-After."""
    good = active_version(models)
    assert good is not None
    activate(models, corrupt_bytes(models))
    settings = make_settings(db_url, tmp_path, models_dir=models, model_poll_seconds=POLL)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        key = ingest_key(client)
        assert text_model(score(client, key, 0)) == good
        check = client.get("/readyz").json()["checks"]["model"]
        assert check.startswith(good) and "v-corrupt" in check
    # nothing usable at all: the history's version is damaged too
    (text_dir(models) / good / MODEL_FILE).write_bytes(b"junk")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        key = ingest_key(client)
        r = client.post(
            "/v1/listings/score",
            json={"listing_id": "M-x", "seller_id": "s", "title": "replica"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 503 and r.json()["error"] == "model_unavailable", r.text
        assert int(r.headers["Retry-After"]) > 0

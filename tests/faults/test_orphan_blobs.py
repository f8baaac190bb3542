"""The database write fails after a request wrote image bytes to the blob store.

Blobs are content-addressed and shared (the same photo in many listings is one file), so a
failed request must not delete a name someone else may rely on. A request stages its bytes
under names of its own and they take their content-addressed names only when its unit of work
commits; when it does not, it removes what it staged. Expected: a request whose database write
fails leaves no file behind, and never removes bytes a committed row refers to.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from store.blobs import LocalBlobStore, sha256_hex
from store.listings import ListingRepository
from store.references import ReferenceRepository
from tests.api.conftest import ADMIN_KEY
from tests.faults.test_blob_store_unwritable import _auth, no_orphan_rows
from tests.faults.test_database_outage import assert_unavailable
from tests.support.images import product_photo


def _ingest(client: TestClient) -> dict[str, str]:
    r = client.post("/v1/keys", json={"role": "ingest"}, headers=_auth(ADMIN_KEY))
    assert r.status_code == 201, r.text
    return _auth(r.json()["key"])


def _listing(n: int, photo: bytes | None) -> dict[str, Any]:
    body: dict[str, Any] = {"listing_id": f"O-{n}", "seller_id": "s", "title": f"Bag {n}"}
    if photo is not None:
        body["images"] = [{"data": base64.b64encode(photo).decode()}]
    return body


def _files(blobs: Path) -> set[str]:
    """Every file under the blob directory, staged and temporary ones included."""
    return {p.name for p in blobs.rglob("*") if p.is_file()}


def _database_down(*_: Any, **__: Any) -> Any:
    raise OperationalError("INSERT ...", {}, Exception("server closed the connection"))


def test_scoring_whose_database_write_fails_leaves_no_blob(
    client: TestClient, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest = _ingest(client)
    shared = product_photo(801, 300)
    r = client.post("/v1/listings/score", json=_listing(0, shared), headers=ingest)
    assert r.status_code == 200, r.text
    blobs = tmp_path / "blobs"
    before = _files(blobs)
    assert before == {sha256_hex(shared)}
    monkeypatch.setattr(ListingRepository, "record_many", _database_down)
    monkeypatch.setattr(ListingRepository, "record", _database_down)
    fresh = [product_photo(802 + i, 300) for i in range(3)]
    r = client.post("/v1/listings/score", json=_listing(1, fresh[0]), headers=ingest)
    assert_unavailable(r)
    batch = {"listings": [_listing(2, fresh[1]), _listing(3, shared), _listing(4, fresh[2])]}
    r = client.post("/v1/listings/score-batch", json=batch, headers=ingest)
    assert_unavailable(r)
    # a listing of its own whose photo another, committed, listing uses: the bytes stay
    r = client.post("/v1/listings/score", json=_listing(5, shared), headers=ingest)
    assert_unavailable(r)
    assert _files(blobs) == before
    assert LocalBlobStore(blobs).get(sha256_hex(shared)) == shared
    monkeypatch.undo()
    r = client.post("/v1/listings/score-batch", json=batch, headers=ingest)
    assert [v["cached"] for v in r.json()["results"]] == [False, False, False], r.text
    assert _files(blobs) == before | {sha256_hex(fresh[1]), sha256_hex(fresh[2])}
    no_orphan_rows(db_url, LocalBlobStore(blobs))


def test_reference_upload_whose_database_write_fails_leaves_no_blob(
    client: TestClient, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = _auth(ADMIN_KEY)
    brand = client.post("/v1/brands", json={"name": "Acme"}, headers=admin).json()["id"]
    kept, fresh = product_photo(810, 400), product_photo(811, 400)
    r = client.post(
        f"/v1/brands/{brand}/references",
        files=[("files", ("kept.jpg", kept, "image/jpeg"))],
        headers=admin,
    )
    assert r.status_code == 201, r.text
    blobs = tmp_path / "blobs"
    before = _files(blobs)
    assert before == {sha256_hex(kept)}
    monkeypatch.setattr(ReferenceRepository, "add", _database_down)
    r = client.post(
        f"/v1/brands/{brand}/references",
        files=[("files", ("fresh.jpg", fresh, "image/jpeg")), ("files", ("k.jpg", kept, "x"))],
        headers=admin,
    )
    assert_unavailable(r)
    assert _files(blobs) == before
    monkeypatch.undo()
    r = client.post(
        f"/v1/brands/{brand}/references",
        files=[("files", ("fresh.jpg", fresh, "image/jpeg"))],
        headers=admin,
    )
    assert r.status_code == 201, r.text
    assert _files(blobs) == before | {sha256_hex(fresh)}
    no_orphan_rows(db_url, LocalBlobStore(blobs))

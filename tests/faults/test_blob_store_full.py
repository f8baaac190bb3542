"""The blob store has no room left: the disk is full (ENOSPC) or the quota exceeded (EDQUOT).

The writes of the blob store fail with that errno (what a full filesystem gives; the real one,
a small tmpfs, is in test_blob_store_unwritable where mounting is allowed). Expected: anything
that must store image bytes answers 507 ``insufficient_storage`` in the one error shape, as its
OpenAPI entry says; nothing is stored, nothing already stored is lost or damaged, text-only
listings are still scored, and everything works again once there is room.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import store.blobs
from store.blobs import LocalBlobStore, sha256_hex
from tests.api.conftest import ADMIN_KEY
from tests.faults.conftest import count_rows
from tests.faults.test_blob_store_unwritable import _listing, no_orphan_rows
from tests.support.images import product_photo

TABLES = ("listings", "listing_versions", "verdicts", "review_items", "reference_images")


class _NoRoom:
    """A file that takes no bytes, as on a full disk (its writes raise ``error``)."""

    def __init__(self, fd: int, error: int) -> None:
        self.fd, self.error = fd, error

    def __enter__(self) -> _NoRoom:
        return self

    def __exit__(self, *_: object) -> None:
        os.close(self.fd)

    def write(self, _: bytes) -> int:
        raise OSError(self.error, os.strerror(self.error))


def no_room(monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    """Make every blob write fail with ``error`` (only the blob store's, nothing else)."""
    fake_os = SimpleNamespace(**{n: getattr(os, n) for n in dir(os) if not n.startswith("__")})
    fake_os.fdopen = lambda fd, *_a, **_k: _NoRoom(fd, error)
    monkeypatch.setattr(store.blobs, "os", fake_os)


def assert_insufficient_storage(r: httpx.Response) -> None:
    assert r.status_code == 507, r.text
    body = r.json()
    assert body["error"] == "insufficient_storage", body
    assert set(body) >= {"error", "detail", "request_id"}, body
    assert int(r.headers["Retry-After"]) > 0


def _files(blobs: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in blobs.rglob("*") if p.is_file()}


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
def test_no_room_for_blobs_answers_507_and_loses_nothing(
    client: TestClient, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    brand = client.post("/v1/brands", json={"name": "Acme"}, headers=admin).json()["id"]
    r = client.post("/v1/keys", json={"role": "ingest"}, headers=admin)
    ingest = {"Authorization": f"Bearer {r.json()['key']}"}
    kept = product_photo(41, 400)
    r = client.post(
        f"/v1/brands/{brand}/references",
        files=[("files", ("kept.jpg", kept, "image/jpeg"))],
        headers=admin,
    )
    assert r.status_code == 201, r.text
    assert client.post("/v1/listings/score", json=_listing(0, True), headers=ingest).is_success
    blobs = tmp_path / "blobs"
    before_files, before_rows = _files(blobs), count_rows(db_url, TABLES)
    no_room(monkeypatch, error)
    r = client.post("/v1/listings/score", json=_listing(1, True), headers=ingest)
    assert_insufficient_storage(r)
    batch = {"listings": [_listing(2, False), _listing(3, True)]}
    r = client.post("/v1/listings/score-batch", json=batch, headers=ingest)
    assert_insufficient_storage(r)
    photo = product_photo(42, 400)
    r = client.post(
        f"/v1/brands/{brand}/references",
        files=[("files", ("a.jpg", photo, "image/jpeg"))],
        headers=admin,
    )
    assert_insufficient_storage(r)
    # the same bytes as stored ones need no room: still answered
    r = client.post(
        f"/v1/brands/{brand}/references",
        files=[("files", ("again.jpg", kept, "image/jpeg"))],
        headers=admin,
    )
    assert r.status_code == 201 and r.json()["references"][0]["status"] == "existing", r.text
    assert count_rows(db_url, TABLES) == before_rows
    assert _files(blobs) == before_files  # nothing half-written, nothing removed or changed
    assert client.post("/v1/listings/score", json=_listing(4, False), headers=ingest).is_success
    monkeypatch.undo()
    r = client.post("/v1/listings/score", json=_listing(1, True), headers=ingest)
    assert r.status_code == 200 and r.json()["cached"] is False, r.text
    r = client.post("/v1/listings/score-batch", json=batch, headers=ingest)
    assert [v["cached"] for v in r.json()["results"]] == [False, False], r.text
    assert LocalBlobStore(blobs).get(sha256_hex(kept)) == kept
    no_orphan_rows(db_url, LocalBlobStore(blobs))


def test_507_is_declared_in_openapi(client: TestClient) -> None:
    paths: dict[str, Any] = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/listings/score",
        "/v1/listings/score-batch",
        "/v1/brands/{brand_id}/references",
    ):
        responses = paths[path]["post"]["responses"]
        assert "507" in responses and "503" in responses, (path, sorted(responses))
        schema = responses["507"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}

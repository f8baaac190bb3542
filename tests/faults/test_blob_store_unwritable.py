"""The blob directory becomes unwritable while the service runs.

Tests run as root, where ``chmod 0o500`` does not stop writes, so the directory is made
unwritable in ways that hold for root too: replaced by a regular file, a read-only filesystem
mounted over it, a filesystem that is full (the two mounts need the right to mount; skipped
without it). Expected: anything that must store image bytes answers 503
``blob_store_unavailable`` with ``Retry-After`` in the one error shape (507
``insufficient_storage`` when the filesystem is full), nothing is stored that
refers to bytes the blob store does not have, text-only listings are still scored, and once the
directory is writable again everything works without a restart.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from store.blobs import LocalBlobStore
from store.tables import ListingVersion, Reference
from tests.api.conftest import ADMIN_KEY
from tests.faults.conftest import count_rows
from tests.faults.test_database_outage import assert_unavailable
from tests.support.images import product_photo


def _mount(args: list[str], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *args, target], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")


def _umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


@contextlib.contextmanager
def replaced_by_file(blobs: Path) -> Iterator[None]:
    shutil.move(blobs, blobs.with_name("blobs.kept"))
    blobs.write_text("not a directory")
    try:
        yield
    finally:
        blobs.unlink()
        shutil.move(blobs.with_name("blobs.kept"), blobs)


@contextlib.contextmanager
def read_only_filesystem(blobs: Path) -> Iterator[None]:
    _mount(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"], blobs)
    try:
        yield
    finally:
        _umount(blobs)


@contextlib.contextmanager
def full_filesystem(blobs: Path) -> Iterator[None]:
    _mount(["-t", "tmpfs", "-o", "size=256k", "tmpfs"], blobs)
    try:
        with contextlib.suppress(OSError), open(blobs / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        yield
    finally:
        _umount(blobs)


FAULTS: dict[str, Callable[[Path], contextlib.AbstractContextManager[None]]] = {
    "replaced_by_a_file": replaced_by_file,
    "read_only_filesystem": read_only_filesystem,
    "disk_full": full_filesystem,
}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _listing(n: int, image: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"listing_id": f"B-{n}", "seller_id": "s", "title": f"Bag {n}"}
    if image:
        body["images"] = [{"data": base64.b64encode(product_photo(700 + n, 300)).decode()}]
    return body


def no_orphan_rows(db_url: str, blobs: LocalBlobStore) -> None:
    """Every stored listing image and reference has its bytes in the blob store."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            images = [i for (imgs,) in conn.execute(select(ListingVersion.images)) for i in imgs]
            refs = list(conn.execute(select(Reference.sha256)).scalars())
    finally:
        engine.dispose()
    for entry in images:
        if "sha256" in entry and "error" not in entry:
            assert blobs.get(entry["sha256"]) is not None, entry
    for sha in refs:
        assert blobs.get(sha) is not None, sha


def refused(r: httpx.Response, fault: str) -> None:
    """503 ``blob_store_unavailable``; 507 ``insufficient_storage`` when there is no room."""
    if fault == "disk_full":
        assert r.status_code == 507, r.text
        assert r.json()["error"] == "insufficient_storage", r.json()
        assert int(r.headers["Retry-After"]) > 0
    else:
        assert_unavailable(r)
        assert r.json()["error"] == "blob_store_unavailable", r.json()


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_unwritable_blob_directory(
    client: TestClient, db_url: str, tmp_path: Path, fault: str
) -> None:
    admin = _auth(ADMIN_KEY)
    brand = client.post("/v1/brands", json={"name": "Acme"}, headers=admin).json()["id"]
    r = client.post("/v1/keys", json={"role": "ingest"}, headers=admin)
    ingest = _auth(r.json()["key"])
    assert client.post("/v1/listings/score", json=_listing(0, True), headers=ingest).is_success
    tables = ("listings", "listing_versions", "verdicts", "review_items", "reference_images")
    before = count_rows(db_url, tables)
    blobs = tmp_path / "blobs"
    with FAULTS[fault](blobs):
        r = client.post("/v1/listings/score", json=_listing(1, True), headers=ingest)
        refused(r, fault)
        batch = {"listings": [_listing(2, False), _listing(3, True)]}
        r = client.post("/v1/listings/score-batch", json=batch, headers=ingest)
        refused(r, fault)
        photo = product_photo(42, 400)
        r = client.post(
            f"/v1/brands/{brand}/references",
            files=[("files", ("a.jpg", photo, "image/jpeg"))],
            headers=admin,
        )
        refused(r, fault)
        assert count_rows(db_url, tables) == before  # nothing that needs the missing bytes
        text_only = client.post("/v1/listings/score", json=_listing(4, False), headers=ingest)
        assert text_only.status_code == 200, text_only.text  # needs no bytes: still scored
        # the stored image of listing 0 may be unreadable now, but is not reported as gone
        assert client.get("/readyz").status_code == 200
    r = client.post("/v1/listings/score", json=_listing(1, True), headers=ingest)
    assert r.status_code == 200 and r.json()["cached"] is False, r.text
    r = client.post("/v1/listings/score-batch", json=batch, headers=ingest)
    assert [v["cached"] for v in r.json()["results"]] == [False, False], r.text
    r = client.post(
        f"/v1/brands/{brand}/references",
        files=[("files", ("a.jpg", photo, "image/jpeg"))],
        headers=admin,
    )
    assert r.status_code == 201, r.text
    no_orphan_rows(db_url, LocalBlobStore(blobs))

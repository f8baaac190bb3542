"""The content-addressed blob store: durable and non-durable writes, torn files."""

from __future__ import annotations

from pathlib import Path

from store.blobs import LocalBlobStore, sha256_hex


def test_put_and_get_round_trip_both_ways(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    for durable in (True, False):
        data = f"image bytes {durable}".encode()
        digest = blobs.put(data, durable=durable)
        assert digest == sha256_hex(data)
        assert blobs.get(digest) == data and blobs.exists(digest)
        assert blobs.put(data, digest=digest, durable=durable) == digest  # stored once
    assert not list(tmp_path.rglob(".tmp-*"))


def test_a_torn_file_is_never_served_and_the_next_put_repairs_it(tmp_path: Path) -> None:
    # What a crash can leave behind a write that was not fsynced: the name, not the bytes.
    blobs = LocalBlobStore(tmp_path)
    data = b"x" * 10_000
    digest = blobs.put(data, durable=False)
    path = next(p for p in tmp_path.rglob(digest))
    path.write_bytes(b"")
    assert blobs.get(digest) is None
    blobs.put(data, durable=False)
    assert blobs.get(digest) == data
    path.write_bytes(b"y" * len(data))  # same size, other bytes: still never served
    assert blobs.get(digest) is None

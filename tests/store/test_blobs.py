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


def test_staged_bytes_take_their_name_only_when_published(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    data = b"listing photo"
    digest = sha256_hex(data)
    staged = blobs.stage(data)
    assert staged is not None and staged.digest == digest
    assert not (tmp_path / digest[:2] / digest[2:4] / digest).exists()
    staged.publish()
    assert blobs.get(digest) == data
    assert blobs.stage(data) is None  # stored already: nothing staged, nothing to remove
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [digest]


def test_a_failed_unit_removes_only_what_it_staged(tmp_path: Path) -> None:
    # Two requests write the same bytes at once; the one that fails must not take the bytes
    # from the one that commits, whichever finishes first.
    blobs = LocalBlobStore(tmp_path)
    data = b"the same photo in two listings"
    for failed_first in (True, False):
        failing, committing = blobs.stage(data), blobs.stage(data)
        assert failing is not None and committing is not None
        if failed_first:
            failing.discard()
            committing.publish()
        else:
            committing.publish()
            failing.discard()
        assert blobs.get(sha256_hex(data)) == data
        assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [sha256_hex(data)]
        next(tmp_path.rglob(sha256_hex(data))).unlink()


def test_bytes_staged_by_a_unit_that_committed_and_died_are_still_served(tmp_path: Path) -> None:
    # The process died between its COMMIT and the rename: the row refers to the bytes.
    blobs = LocalBlobStore(tmp_path)
    data = b"committed, never published"
    staged = blobs.stage(data)
    assert staged is not None
    assert blobs.get(staged.digest) == data
    assert staged.final.exists() and not staged.staged.exists()  # published on the way
    staged.publish()  # the unit of work itself, late: no harm
    assert blobs.get(staged.digest) == data

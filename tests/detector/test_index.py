"""HammingIndex: exactness against brute force, mutations, memory and concurrency."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from detector import index as index_module
from detector.index import HammingIndex, Matches, hash_to_int64, int64_to_hash

U64 = np.uint64
Row = tuple[int, int, int]  # (hash, ref_key, variant)


class Model:
    """Brute-force reference: the live rows as plain lists."""

    def __init__(self) -> None:
        self.hashes = np.zeros(0, dtype=np.uint64)
        self.refs = np.zeros(0, dtype=np.int32)
        self.variants = np.zeros(0, dtype=np.uint8)

    def add(self, h: np.ndarray, r: np.ndarray, v: np.ndarray) -> None:
        self.hashes = np.concatenate([self.hashes, h])
        self.refs = np.concatenate([self.refs, r])
        self.variants = np.concatenate([self.variants, v])

    def remove(self, ref: int) -> int:
        keep = self.refs != ref
        removed = int(keep.size - keep.sum())
        self.hashes, self.refs, self.variants = (
            self.hashes[keep],
            self.refs[keep],
            self.variants[keep],
        )
        return removed

    def search(self, q: int, d: int) -> list[tuple[int, int, int]]:
        dist = np.bitwise_count(self.hashes ^ U64(q))
        hit = np.flatnonzero(dist <= d)
        return sorted(
            zip(
                dist[hit].tolist(),
                self.refs[hit].tolist(),
                self.variants[hit].tolist(),
                strict=True,
            )
        )


def as_tuples(m: Matches) -> list[tuple[int, int, int]]:
    return list(zip(m.distances.tolist(), m.ref_keys.tolist(), m.variants.tolist(), strict=True))


def flip_bits(rng: np.random.Generator, h: np.ndarray, max_flips: int) -> np.ndarray:
    """Flip up to ``max_flips`` random bits of each hash (repeats may cancel out)."""
    out = h.copy()
    flips = rng.integers(0, max_flips + 1, size=h.shape[0])
    for k in range(max_flips):
        bit = rng.integers(0, 64, size=h.shape[0]).astype(np.uint64)
        out ^= np.where(flips > k, U64(1) << bit, U64(0))
    return out


def random_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**64, size=n, dtype=np.uint64)


def clustered_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Product photos on white: few near-identical templates, many exact duplicates."""
    centres = random_hashes(rng, 12)
    base = centres[rng.integers(0, centres.size, size=n)]
    return flip_bits(rng, base, 5)


@pytest.fixture(params=["tables", "brute"])
def strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Force the bucket tables (even when a scan would be cheaper) or the scan fallback."""
    cost = 0 if request.param == "tables" else 10**12
    monkeypatch.setattr(index_module, "_CANDIDATE_COST_ROWS", cost)
    monkeypatch.setattr(index_module, "_SEARCH_OVERHEAD_ROWS", cost)
    yield request.param


def check(index: HammingIndex, model: Model, queries: np.ndarray, d: int) -> None:
    got = index.search(queries, d)
    assert len(got) == len(queries)
    for q, m in zip(queries.tolist(), got, strict=True):
        assert as_tuples(m) == model.search(q, d), (hex(q), d)
        assert m.ref_keys.dtype == np.int32 and m.variants.dtype == np.uint8
    assert len(index) == model.hashes.size


@pytest.mark.parametrize("kind", ["random", "clustered"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force_across_mutations(kind: str, seed: int, strategy: str) -> None:
    rng = np.random.default_rng(seed)
    make = random_hashes if kind == "random" else clustered_hashes
    index = HammingIndex(delta_limit=700)
    model = Model()
    next_ref = 0
    for step in range(14):
        op = rng.random()
        if op < 0.55 or model.hashes.size == 0:
            n = int(rng.integers(1, 1500))
            h = make(rng, n)
            # Several rows per ref (variants of one reference image).
            r = (next_ref + rng.integers(0, max(1, n // 4), size=n)).astype(np.int32)
            next_ref += n
            v = rng.integers(0, 5, size=n).astype(np.uint8)
            index.add(h, r, v)
            model.add(h, r, v)
        elif op < 0.85:
            ref = int(rng.choice(model.refs))
            assert index.remove(ref) == model.remove(ref)
        elif op < 0.93:
            # Re-add rows of an existing ref after removing it.
            ref = int(rng.choice(model.refs))
            keep = model.refs == ref
            h, v = model.hashes[keep], model.variants[keep]
            assert index.remove(ref) == model.remove(ref)
            r = np.full(h.size, ref, dtype=np.int32)
            index.add(h, r, v)
            model.add(h, r, v)
        else:
            index.compact()
        queries = make(rng, 3)
        if model.hashes.size:
            near = flip_bits(rng, rng.choice(model.hashes, size=6), 14)
            queries = np.concatenate([near, queries])
        d = [0, 1, 3, 8, 10, 12, 16][step % 7]
        check(index, model, queries, d)
    for d in (5, 9, 11, 13, 20, 64):
        check(index, model, flip_bits(rng, rng.choice(model.hashes, size=5), 10), d)


def test_tables_are_used_at_realistic_sizes() -> None:
    """The default cost model picks the tables at 1M and 10M rows for d <= 12, and the
    tables give exact results under it at a size where they win for small d."""
    for n in (1_000_000, 10_000_000):
        t = index_module._table_bits(n)
        assert t >= 17
        for d in (8, 10, 12):
            assert index_module._prefer_tables(n, t, d), (n, d)
        assert not index_module._prefer_tables(n, t, 24)
    rng = np.random.default_rng(7)
    n = 200_000
    h = random_hashes(rng, n)
    refs, variants = np.arange(n, dtype=np.int32), np.zeros(n, dtype=np.uint8)
    index = HammingIndex()
    index.add(h, refs, variants)
    model = Model()
    model.add(h, refs, variants)
    assert index_module._prefer_tables(n, index._state.main.t, 8)
    check(index, model, flip_bits(rng, h[:20], 10), 8)


def test_sorted_by_distance_then_ref_and_batch_equals_single() -> None:
    index = HammingIndex()
    base = 0xF0F0_0000_1234_5678
    hashes = np.array([base ^ 0b111, base, base ^ 0b1, base ^ (1 << 63), base], dtype=np.uint64)
    index.add(
        hashes, np.array([5, 9, 3, 2, 1], dtype=np.int32), np.array([0, 0, 1, 2, 3], dtype=np.uint8)
    )
    (m,) = index.search(np.array([base], dtype=np.uint64), 3)
    assert as_tuples(m) == [(0, 1, 3), (0, 9, 0), (1, 2, 2), (1, 3, 1), (3, 5, 0)]
    assert len(m) == 5
    queries = np.array([base, base ^ 0xFF, 0], dtype=np.uint64)
    batch = index.search(queries, 4)
    for q, m in zip(queries, batch, strict=True):
        assert as_tuples(m) == as_tuples(index.search(np.array([q]), 4)[0])
    assert len(batch[1]) == 0 and len(batch[2]) == 0


def test_remove_and_readd() -> None:
    index = HammingIndex(delta_limit=3)
    h = np.array([1, 2, 3, 4, 5, 6], dtype=np.uint64)
    index.add(h, np.array([1, 1, 2, 2, 2, 3], dtype=np.int32), np.zeros(6, dtype=np.uint8))
    assert index.memory_usage()["delta"] == 0  # past delta_limit: compacted into main
    index.add(
        np.array([7], dtype=np.uint64), np.array([2], dtype=np.int32), np.array([4], dtype=np.uint8)
    )
    assert len(index) == 7
    assert index.remove(2) == 4  # three in main, one in the delta
    assert index.remove(2) == 0
    assert index.remove(99) == 0
    assert index.remove(2**40) == 0
    assert len(index) == 3
    q = np.array([3, 7], dtype=np.uint64)
    assert [len(m) for m in index.search(q, 0)] == [0, 0]
    index.add(
        np.array([3], dtype=np.uint64), np.array([2], dtype=np.int32), np.array([1], dtype=np.uint8)
    )
    (m,) = index.search(np.array([3], dtype=np.uint64), 0)
    assert as_tuples(m) == [(0, 2, 1)]
    index.compact()
    (m,) = index.search(np.array([3], dtype=np.uint64), 0)
    assert as_tuples(m) == [(0, 2, 1)]
    assert index.memory_usage()["tombstones"] == 0 and len(index) == 4


def test_empty_index_and_empty_query() -> None:
    index = HammingIndex()
    assert len(index) == 0
    (m,) = index.search(np.array([123], dtype=np.uint64), 10)
    assert len(m) == 0 and m.distances.dtype == np.uint8
    assert index.search(np.zeros(0, dtype=np.uint64), 10) == []
    index.add(
        np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint8)
    )
    index.compact()
    assert len(index) == 0


def test_memory_under_16_bytes_per_hash() -> None:
    rng = np.random.default_rng(3)
    for n in (1_000, 300_000):
        index = HammingIndex()
        index.add(random_hashes(rng, n), np.zeros(n, dtype=np.int32), np.zeros(n, dtype=np.uint8))
        index.compact()
        usage = index.memory_usage()
        structure = usage["hashes"] + usage["offsets"] + usage["row_ids"]
        assert structure / n <= 16, usage
        assert usage["ref_keys"] == 4 * n and usage["variants"] == n
        assert index.nbytes() == sum(usage.values())


def test_input_validation() -> None:
    index = HammingIndex()
    one_ref = np.array([1], dtype=np.int32)
    one_var = np.array([0], dtype=np.uint8)
    with pytest.raises(ValueError, match="same length"):
        index.add(np.array([1, 2], dtype=np.uint64), one_ref, one_var)
    with pytest.raises(TypeError, match="view"):
        index.add(np.array([-5], dtype=np.int64), one_ref, one_var)
    with pytest.raises(ValueError, match="variants"):
        index.add(np.array([1], dtype=np.uint64), one_ref, np.array([300]))
    with pytest.raises(ValueError, match="max_distance"):
        index.search(np.array([1], dtype=np.uint64), -1)
    # Plain non-negative Python ints are accepted, including values above 2**63.
    index.add([2**64 - 1, 5], [1, 2], [0, 1])
    (m,) = index.search([2**64 - 2], 1)
    assert m.ref_keys.tolist() == [1]


def test_int64_round_trip() -> None:
    for u in (0, 1, 2**63 - 1, 2**63, 2**64 - 1):
        i = hash_to_int64(u)
        assert -(2**63) <= i < 2**63
        assert int64_to_hash(i) == u
        assert np.array([u], dtype=np.uint64).view(np.int64)[0] == i
    assert hash_to_int64(2**64 - 1) == -1
    with pytest.raises(ValueError):
        hash_to_int64(2**64)
    with pytest.raises(ValueError):
        hash_to_int64(-1)
    with pytest.raises(ValueError):
        int64_to_hash(2**63)


def test_concurrent_search_during_mutation() -> None:
    rng = np.random.default_rng(11)
    index = HammingIndex(delta_limit=2_000)
    stable = random_hashes(rng, 5_000)
    index.add(
        stable, np.full(stable.size, 1, dtype=np.int32), np.zeros(stable.size, dtype=np.uint8)
    )
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                for m in index.search(stable[:16], 2):
                    assert 1 in m.ref_keys.tolist()
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        removed = 0
        for ref in range(2, 40):
            h = random_hashes(rng, 300)
            index.add(h, np.full(h.size, ref, dtype=np.int32), np.zeros(h.size, dtype=np.uint8))
            if ref % 3 == 0:
                assert index.remove(ref - 1) == 300
                removed += 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert len(index) == 5_000 + 300 * (38 - removed)

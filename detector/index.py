"""Exact Hamming-distance search over 64-bit perceptual hashes of brand reference images.

Design (measured in ``bench/bench_index.py``):

* A **main segment**, immutable, built with multi-index hashing (Norouzi, Punjani & Fleet,
  "Fast Exact Search in Hamming Space with Multi-Index Hashing", 2014). Three disjoint bit
  substrings of ``t`` bits each (``3 * t <= 64``) key three bucket tables. By pigeonhole, a row
  within distance ``d`` of the query has some substring within ``d // 3`` of the query's (tighter
  per table: substring ``i`` within ``q`` for ``i <= a`` and ``q - 1`` otherwise, where
  ``d = 3 * q + a``). A query enumerates the substring neighbours, reads the matching buckets
  and verifies every candidate with ``np.bitwise_count``, so results equal a brute-force scan.
  Table 0 is implicit: the hash array itself is bucketed by its top ``t`` bits. Tables 1 and 2
  are CSR (an offsets array plus the row ids of each bucket, stored as 3 bytes: ``uint16`` low
  and ``uint8`` high). ``t`` is sized from the row count so the offsets stay under about
  1.75 bytes per row: the index costs about 8 (hash) + 6 (ids) + <=1.75 (offsets) bytes per row,
  plus 5 bytes per row for the caller's ref key and variant code.
* A small **delta segment** of recent additions, scanned brute force.
* **Tombstones**: main-segment rows removed since the last compaction (a sorted row-id array).
* **Compaction** rebuilds the main segment from its live rows plus the delta once the delta or
  the tombstones pass ``delta_limit`` rows, so its O(N) cost is spread over that many mutations.

Thread safety: copy-on-write. All arrays of a state are never written after construction; a
mutation builds a new state and swaps one attribute, and mutations are serialised by a lock.
Searches take no lock, may run concurrently with each other and with a mutation, and see the
index either wholly before or wholly after it.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["HammingIndex", "Matches", "hash_to_int64", "int64_to_hash"]

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
U32 = npt.NDArray[np.uint32]
U16 = npt.NDArray[np.uint16]
U8 = npt.NDArray[np.uint8]

HASH_BITS = 64
N_TABLES = 3
_MAX_TABLE_BITS = HASH_BITS // N_TABLES  # 21
# Offsets budget: 3 tables * 4 bytes * 2**t <= _OFFSET_BYTES_PER_ROW * rows.
_OFFSET_BYTES_PER_ROW = 1.75
# Cost model choosing the tables or a scan, in units of "one row of a brute-force scan"
# (measured: a scan costs about 1-4 ns a row, a verified candidate 15-30 ns as it is a random
# access, and the table probes of one search about 50 us of numpy call overhead).
_CANDIDATE_COST_ROWS = 16
_SEARCH_OVERHEAD_ROWS = 50_000
# Upper bound on the elements of one vectorised step (bucket lookups or a query x row block),
# which bounds the temporary memory of a batch search to tens of megabytes.
_BLOCK_ELEMENTS = 1 << 16

_A = TypeVar("_A", bound=np.ndarray)

_INT64_SPAN = 1 << 64
_INT64_MAX = (1 << 63) - 1


def hash_to_int64(u: int) -> int:
    """Map an unsigned 64-bit hash to the signed integer with the same bits (for BIGINT columns).

    Parameters
    ----------
    u : int
        Hash in ``[0, 2**64)``.

    Returns
    -------
    int
        Value in ``[-2**63, 2**63)``; ``int64_to_hash`` inverts it.
    """
    u = int(u)
    if not 0 <= u < _INT64_SPAN:
        raise ValueError(f"hash out of uint64 range: {u}")
    return u - _INT64_SPAN if u > _INT64_MAX else u


def int64_to_hash(i: int) -> int:
    """Inverse of :func:`hash_to_int64`: signed BIGINT value back to the unsigned 64-bit hash.

    For whole arrays use ``arr.astype(np.int64).view(np.uint64)`` instead.
    """
    i = int(i)
    if not -(1 << 63) <= i <= _INT64_MAX:
        raise ValueError(f"value out of int64 range: {i}")
    return i + _INT64_SPAN if i < 0 else i


@dataclass(frozen=True, eq=False)
class Matches:
    """Rows within the requested Hamming distance of one query hash.

    The three arrays are aligned and sorted by distance ascending, then ref key, then variant.
    A row added several times is reported once per addition.

    Attributes
    ----------
    ref_keys : numpy.ndarray of int32
        Ref key of each matching row.
    variants : numpy.ndarray of uint8
        Variant code of each matching row.
    distances : numpy.ndarray of uint8
        Hamming distance between the row's hash and the query, ``0..64``.
    """

    ref_keys: I32
    variants: U8
    distances: U8

    def __len__(self) -> int:
        return int(self.distances.shape[0])


@functools.lru_cache(maxsize=64)
def _flip_masks(bits: int, radius: int) -> U32:
    """All ``bits``-bit values with at most ``radius`` set bits (read-only, cached)."""
    values = np.arange(1 << bits, dtype=np.uint32)
    masks = values[np.bitwise_count(values) <= radius]
    masks.setflags(write=False)
    return masks


def _table_bits(rows: int) -> int:
    """Substring width: as wide as the offsets budget allows, at most 21 bits."""
    budget = _OFFSET_BYTES_PER_ROW * rows / (N_TABLES * 4)
    t = 1
    while t < _MAX_TABLE_BITS and (1 << (t + 1)) + 1 <= budget:
        t += 1
    return t


def _radii(max_distance: int) -> list[int]:
    """Per-table substring search radius (negative: the table need not be probed)."""
    q, a = divmod(max_distance, N_TABLES)
    return [q if i <= a else q - 1 for i in range(N_TABLES)]


def _expand_ranges(starts: I64, lens: I64) -> I64:
    """Concatenate ``arange(s, s + n)`` for every (s, n), vectorised."""
    ends = np.cumsum(lens)
    total = int(ends[-1]) if ends.size else 0
    out: I64 = np.arange(total, dtype=np.int64)
    out += np.repeat(starts - (ends - lens), lens)
    return out


@dataclass(frozen=True, eq=False)
class _Main:
    """Immutable multi-index-hashed segment. Rows are bucketed by the top ``t`` hash bits."""

    hashes: U64
    ref_keys: I32
    variants: U8
    t: int
    offsets: tuple[U32, U32, U32]  # per table, 2**t + 1 entries
    ids_lo: tuple[U16, U16]  # tables 1 and 2: row id low 16 bits
    ids_hi: tuple[npt.NDArray[np.unsignedinteger], npt.NDArray[np.unsignedinteger]]

    @property
    def size(self) -> int:
        return int(self.hashes.shape[0])

    def nbytes(self) -> dict[str, int]:
        return {
            "hashes": self.hashes.nbytes,
            "offsets": sum(o.nbytes for o in self.offsets),
            "row_ids": sum(a.nbytes for a in self.ids_lo) + sum(a.nbytes for a in self.ids_hi),
            "ref_keys": self.ref_keys.nbytes,
            "variants": self.variants.nbytes,
        }


def _keys(hashes: U64, t: int, table: int) -> U32:
    """Substring ``table`` (``t`` bits; table 0 holds the top bits) of each hash."""
    shift = np.uint64(HASH_BITS - (table + 1) * t)
    return ((hashes >> shift) & np.uint64((1 << t) - 1)).astype(np.uint32)


def _bucket(keys: U32, t: int) -> tuple[U32, U32]:
    """Order rows by key (stable within a bucket) and return (order, CSR offsets)."""
    n = keys.shape[0]
    # Sorting key << 32 | row as one uint64 array is several times faster than an argsort.
    composite = keys.astype(np.uint64)
    composite <<= np.uint64(32)
    composite |= np.arange(n, dtype=np.uint64)
    composite.sort()
    order = composite.astype(np.uint32)  # truncation keeps the row
    del composite
    counts = np.bincount(keys, minlength=1 << t)
    offsets = np.zeros((1 << t) + 1, dtype=np.uint32)
    np.cumsum(counts, out=offsets[1:])
    return order, offsets


def _build_main(hashes: U64, ref_keys: I32, variants: U8) -> _Main:
    n = hashes.shape[0]
    if n >= 1 << 32:
        raise ValueError("the index holds at most 2**32 - 1 rows")
    t = _table_bits(n)
    order, off0 = _bucket(_keys(hashes, t, 0), t)
    hashes = hashes[order]
    ref_keys = ref_keys[order]
    variants = variants[order]
    del order
    hi_dtype = np.uint8 if n <= 1 << 24 else np.uint16
    offsets = [off0]
    lo: list[U16] = []
    hi: list[npt.NDArray[np.unsignedinteger]] = []
    for table in (1, 2):
        order, off = _bucket(_keys(hashes, t, table), t)
        offsets.append(off)
        lo.append(order.astype(np.uint16))
        order >>= np.uint32(16)
        hi.append(order.astype(hi_dtype))
        del order
    arrays: list[np.ndarray] = [hashes, ref_keys, variants, *offsets, *lo, *hi]
    for arr in arrays:
        arr.setflags(write=False)
    return _Main(
        hashes,
        ref_keys,
        variants,
        t,
        (offsets[0], offsets[1], offsets[2]),
        (lo[0], lo[1]),
        (hi[0], hi[1]),
    )


def _empty_main() -> _Main:
    return _build_main(
        np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint8)
    )


@dataclass(frozen=True, eq=False)
class _State:
    """One immutable snapshot of the index."""

    main: _Main
    dead: I64  # sorted main-row ids removed since the last compaction
    delta_hashes: U64
    delta_ref_keys: I32
    delta_variants: U8

    @property
    def live(self) -> int:
        return self.main.size - int(self.dead.shape[0]) + int(self.delta_hashes.shape[0])


class HammingIndex:
    """Exact radius search in Hamming space over 64-bit perceptual hashes.

    Each row is a hash with the caller's ``ref_key`` (which reference image it came from) and a
    ``variant`` code (which transformed copy of that image: original, mirror, crop...).
    ``search`` returns every live row within the distance, identical to a brute-force scan.

    Parameters
    ----------
    delta_limit : int, default 50_000
        Rows added (or removed from the main segment) before the main segment is rebuilt.
        Larger values make additions cheaper and searches slower (the delta is scanned brute
        force).

    Notes
    -----
    Thread safety: copy-on-write. ``search`` takes no lock and may run from many threads while
    ``add``, ``remove`` or ``compact`` runs; it sees the index before or after the mutation,
    never in between. Mutations are serialised by an internal lock. A compaction runs in the
    thread of the mutation that triggers it and briefly doubles the main segment's memory.

    Memory: about 14 bytes per row for the hash and the two row-id tables, plus at most
    1.75 bytes per row of bucket offsets, plus 5 bytes per row of ref key and variant code.

    Examples
    --------
    >>> index = HammingIndex()
    >>> index.add(np.array([0b1011], dtype=np.uint64), np.array([7], dtype=np.int32),
    ...           np.array([0], dtype=np.uint8))
    >>> m = index.search(np.array([0b0011], dtype=np.uint64), max_distance=2)[0]
    >>> m.ref_keys.tolist(), m.distances.tolist()
    ([7], [1])
    """

    def __init__(self, *, delta_limit: int = 50_000) -> None:
        if delta_limit < 0:
            raise ValueError("delta_limit must be >= 0")
        self.delta_limit = delta_limit
        self._lock = threading.Lock()
        self._state = _State(
            _empty_main(),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.uint64),
            np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=np.uint8),
        )

    # ------------------------------------------------------------------ mutation

    def add(self, hashes: npt.ArrayLike, ref_keys: npt.ArrayLike, variants: npt.ArrayLike) -> None:
        """Add rows. Duplicates are kept (a row added twice is reported twice).

        Parameters
        ----------
        hashes : array of uint64
            Perceptual hashes. Signed values read from a BIGINT column must be converted first
            with ``.view(np.uint64)``.
        ref_keys : array of int32
            Caller's integer key of the reference each hash belongs to.
        variants : array of uint8
            Variant code of each hash.
        """
        h = _as_hashes(hashes, "hashes")
        r = _as_int(ref_keys, np.int32, "ref_keys")
        v = _as_int(variants, np.uint8, "variants")
        if not h.shape == r.shape == v.shape:
            raise ValueError("hashes, ref_keys and variants must have the same length")
        if h.size == 0:
            return
        with self._lock:
            s = self._state
            state = _State(
                s.main,
                s.dead,
                _frozen(np.concatenate([s.delta_hashes, h])),
                _frozen(np.concatenate([s.delta_ref_keys, r])),
                _frozen(np.concatenate([s.delta_variants, v])),
            )
            if state.delta_hashes.shape[0] > self.delta_limit:
                state = _compacted(state)
            self._state = state

    def remove(self, ref_key: int) -> int:
        """Remove every live row of ``ref_key``.

        Parameters
        ----------
        ref_key : int
            Key given to :meth:`add`.

        Returns
        -------
        int
            Number of rows removed (0 if the key is unknown).
        """
        if not -(1 << 31) <= int(ref_key) < 1 << 31:
            return 0
        key = np.int32(ref_key)
        with self._lock:
            s = self._state
            rows = np.flatnonzero(s.main.ref_keys == key)
            if s.dead.size and rows.size:
                rows = rows[~_sorted_contains(s.dead, rows)]
            keep = s.delta_ref_keys != key
            removed = int(rows.size) + int(keep.size - np.count_nonzero(keep))
            if removed == 0:
                return 0
            dead = s.dead
            if rows.size:
                dead = _frozen(np.union1d(s.dead, rows).astype(np.int64))
            state = s
            if not keep.all():
                state = _State(
                    s.main,
                    dead,
                    _frozen(s.delta_hashes[keep]),
                    _frozen(s.delta_ref_keys[keep]),
                    _frozen(s.delta_variants[keep]),
                )
            else:
                state = _State(s.main, dead, s.delta_hashes, s.delta_ref_keys, s.delta_variants)
            if dead.shape[0] > self.delta_limit:
                state = _compacted(state)
            self._state = state
            return removed

    def compact(self) -> None:
        """Rebuild the main segment from its live rows and the delta; empty the delta."""
        with self._lock:
            self._state = _compacted(self._state)

    # ------------------------------------------------------------------ queries

    def search(self, queries: npt.ArrayLike, max_distance: int) -> list[Matches]:
        """Find all live rows within ``max_distance`` bits of each query hash.

        Parameters
        ----------
        queries : array of uint64
            Query hashes (1-D).
        max_distance : int
            Inclusive Hamming radius, ``>= 0``. The tables pay off up to about 12-16 at
            millions of rows; larger radii fall back to a brute-force scan (still exact).

        Returns
        -------
        list of Matches
            One per query, in query order.
        """
        q = _as_hashes(queries, "queries")
        d = int(max_distance)
        if d < 0:
            raise ValueError("max_distance must be >= 0")
        d = min(d, HASH_BITS)
        state = self._state  # one snapshot for the whole call
        parts = [_search_main(state.main, q, d), _search_flat(state.delta_hashes, q, d)]
        qid = np.concatenate([parts[0][0], parts[1][0]])
        dist = np.concatenate([parts[0][2], parts[1][2]])
        main_rows = parts[0][1]
        n_main = main_rows.shape[0]
        if state.dead.size and n_main:
            alive = ~_sorted_contains(state.dead, main_rows)
            if not alive.all():
                keep = np.concatenate([alive, np.ones(qid.shape[0] - n_main, dtype=bool)])
                qid, dist, main_rows = qid[keep], dist[keep], main_rows[alive]
                n_main = main_rows.shape[0]
        delta_rows = parts[1][1]
        refs = np.concatenate([state.main.ref_keys[main_rows], state.delta_ref_keys[delta_rows]])
        vars_ = np.concatenate([state.main.variants[main_rows], state.delta_variants[delta_rows]])
        order = np.lexsort((vars_, refs, dist, qid))
        qid, dist, refs, vars_ = qid[order], dist[order], refs[order], vars_[order]
        bounds = np.searchsorted(qid, np.arange(q.shape[0] + 1))
        out = []
        for i in range(q.shape[0]):
            lo, hi = bounds[i], bounds[i + 1]
            out.append(Matches(refs[lo:hi], vars_[lo:hi], dist[lo:hi]))
        return out

    def __len__(self) -> int:
        return self._state.live

    def nbytes(self) -> int:
        """Bytes held by the index arrays, ref keys and variant codes included."""
        return sum(self.memory_usage().values())

    def memory_usage(self) -> dict[str, int]:
        """Bytes per component: ``hashes``, ``offsets``, ``row_ids``, ``ref_keys``,
        ``variants`` (main segment), ``delta`` and ``tombstones``."""
        s = self._state
        usage = s.main.nbytes()
        usage["delta"] = s.delta_hashes.nbytes + s.delta_ref_keys.nbytes + s.delta_variants.nbytes
        usage["tombstones"] = s.dead.nbytes
        return usage

    def __repr__(self) -> str:
        s = self._state
        return (
            f"HammingIndex(live={s.live}, main={s.main.size}, delta={s.delta_hashes.shape[0]}, "
            f"tombstones={s.dead.shape[0]}, table_bits={s.main.t})"
        )


# ---------------------------------------------------------------------- helpers


def _frozen(arr: _A) -> _A:
    arr.setflags(write=False)
    return arr


def _as_hashes(values: npt.ArrayLike, name: str) -> U64:
    arr = np.asarray(values)
    if arr.dtype.kind in "fO" and not isinstance(values, np.ndarray):
        # A Python list mixing ints above 2**63 with small ones becomes float64 or object.
        items = np.asarray(values, dtype=object).ravel().tolist()
        if all(isinstance(x, int | np.integer) and 0 <= x < _INT64_SPAN for x in items):
            arr = np.array(items, dtype=np.uint64)
    if arr.dtype != np.uint64:
        if arr.dtype.kind == "u" or (arr.dtype.kind == "i" and (arr.size == 0 or arr.min() >= 0)):
            arr = arr.astype(np.uint64)
        else:
            raise TypeError(
                f"{name} must be uint64 (signed BIGINT values: use .view(np.uint64)), "
                f"got {arr.dtype}"
            )
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D")
    return arr


def _as_int(values: npt.ArrayLike, dtype: type[np.integer], name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D")
    if arr.dtype == dtype:
        return arr
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got {arr.dtype}")
    info = np.iinfo(dtype)
    if arr.size and (int(arr.min()) < info.min or int(arr.max()) > info.max):
        raise ValueError(f"{name} out of {np.dtype(dtype).name} range")
    return arr.astype(dtype)


def _sorted_contains(sorted_values: I64, x: I64) -> npt.NDArray[np.bool_]:
    pos = np.searchsorted(sorted_values, x)
    pos[pos == sorted_values.shape[0]] = 0
    return np.asarray(sorted_values[pos] == x)


def _compacted(state: _State) -> _State:
    main = state.main
    if state.dead.size:
        live = np.ones(main.size, dtype=bool)
        live[state.dead] = False
        parts_h, parts_r, parts_v = main.hashes[live], main.ref_keys[live], main.variants[live]
    else:
        parts_h, parts_r, parts_v = main.hashes, main.ref_keys, main.variants
    new_main = _build_main(
        np.concatenate([parts_h, state.delta_hashes]),
        np.concatenate([parts_r, state.delta_ref_keys]),
        np.concatenate([parts_v, state.delta_variants]),
    )
    return _State(
        new_main,
        _frozen(np.zeros(0, dtype=np.int64)),
        _frozen(np.zeros(0, dtype=np.uint64)),
        _frozen(np.zeros(0, dtype=np.int32)),
        _frozen(np.zeros(0, dtype=np.uint8)),
    )


_Found = tuple[I64, I64, U8]  # (query index, row, distance)


def _empty_found() -> _Found:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)


def _cat(found: list[_Found]) -> _Found:
    if not found:
        return _empty_found()
    if len(found) == 1:
        return found[0]
    return (
        np.concatenate([f[0] for f in found]),
        np.concatenate([f[1] for f in found]),
        np.concatenate([f[2] for f in found]),
    )


def _search_flat(hashes: U64, queries: U64, d: int) -> _Found:
    """Brute force: every (query, row) pair, in blocks of queries."""
    n, nq = hashes.shape[0], queries.shape[0]
    if n == 0 or nq == 0:
        return _empty_found()
    found: list[_Found] = []
    step = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, nq, step):
        block = queries[start : start + step]
        if block.shape[0] == 1:
            dist = np.bitwise_count(hashes ^ block[0])
            rows = np.flatnonzero(dist <= d)
            qi = np.full(rows.shape[0], start, dtype=np.int64)
        else:
            dist2 = np.bitwise_count(block[:, None] ^ hashes[None, :])
            qi, rows = np.nonzero(dist2 <= d)
            dist = dist2[qi, rows]
            qi = qi + start
            found.append((qi.astype(np.int64), rows.astype(np.int64), dist))
            continue
        found.append((qi, rows.astype(np.int64), dist[rows]))
    return _cat(found)


def _prefer_tables(n: int, t: int, d: int) -> bool:
    """Whether probing the tables is expected to beat scanning ``n`` uniform random rows."""
    lookups = sum(math.comb(t, k) for r in _radii(d) for k in range(r + 1))
    expected_candidates = lookups * n / (1 << t)
    return expected_candidates * _CANDIDATE_COST_ROWS + _SEARCH_OVERHEAD_ROWS < n


def _search_main(main: _Main, queries: U64, d: int) -> _Found:
    n, nq = main.size, queries.shape[0]
    if n == 0 or nq == 0:
        return _empty_found()
    if not _prefer_tables(n, main.t, d):
        return _search_flat(main.hashes, queries, d)
    radii = _radii(d)
    probes = [(i, _flip_masks(main.t, r)) for i, r in enumerate(radii) if r >= 0]
    lookups = sum(m.shape[0] for _, m in probes)
    found: list[_Found] = []
    step = max(1, _BLOCK_ELEMENTS // lookups)
    for start in range(0, nq, step):
        block = queries[start : start + step]
        for table, masks in probes:
            f = _probe(main, block, d, table, masks, radii)
            if f[0].size:
                found.append((f[0] + start, f[1], f[2]))
    return _cat(found)


def _probe(main: _Main, queries: U64, d: int, table: int, masks: U32, radii: list[int]) -> _Found:
    """Candidates of one table for a block of queries, verified and de-duplicated."""
    offsets = main.offsets[table]
    nq, nm = queries.shape[0], masks.shape[0]
    keys = (_keys(queries, main.t, table)[:, None] ^ masks[None, :]).ravel()
    starts = offsets[keys].astype(np.int64)
    lens = offsets[keys + 1].astype(np.int64)
    lens -= starts
    pos = _expand_ranges(starts, lens)
    if table == 0:
        rows = pos
    else:
        rows = main.ids_hi[table - 1][pos].astype(np.int64)
        rows <<= 16
        rows |= main.ids_lo[table - 1][pos]
    x = main.hashes[rows]
    if nq == 1:
        x ^= queries[0]
    else:
        per_query = lens.reshape(nq, nm).sum(axis=1)
        x ^= np.repeat(queries, per_query)
    dist = np.bitwise_count(x)
    idx = np.flatnonzero(dist <= d)
    if table and idx.size:
        # A row is reported by the first table whose substring is within that table's radius,
        # so rows reachable through several tables are reported once.
        xs = x[idx]
        first = np.ones(idx.shape[0], dtype=bool)
        for earlier in range(table):
            first &= np.bitwise_count(_keys(xs, main.t, earlier)) > radii[earlier]
        idx = idx[first]
    if nq == 1:
        qid = np.zeros(idx.shape[0], dtype=np.int64)
    else:
        qid = np.searchsorted(np.cumsum(per_query), idx, side="right").astype(np.int64)
    return qid, rows[idx], dist[idx]

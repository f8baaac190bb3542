"""Match listing images against every brand's reference catalog.

Two stages. The cheap stage hashes the query (a few views) and asks the :class:`CatalogIndex`
for every stored reference variant within a Hamming distance. The verification stage compares
the query with each candidate reference's pixels after alignment and keeps only the matches it
can stand behind; the rejected candidates are returned separately, with the reason, for
debugging, never as matches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from detector.images import HashVariant
from detector.index import HammingIndex

DEFAULT_MAX_DISTANCE = 10


@dataclass(frozen=True)
class Candidate:
    """A stored reference variant within the distance threshold of a query view."""

    reference_id: str
    brand_id: str
    variant: str
    query_view: str
    distance: int


class VariantCodes:
    """Stable uint8 codes for variant names (the index stores a code per row)."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}
        self._names: list[str] = []
        self._lock = threading.Lock()

    def code(self, name: str) -> int:
        found = self._codes.get(name)
        if found is not None:
            return found
        with self._lock:
            if name not in self._codes:
                if len(self._names) >= 255:
                    raise ValueError("more than 255 distinct variant names")
                self._codes[name] = len(self._names)
                self._names.append(name)
            return self._codes[name]

    def name(self, code: int) -> str:
        return self._names[code]


class CatalogIndex:
    """The in-memory catalog: reference ids and brands around a :class:`HammingIndex`.

    Parameters
    ----------
    default_distance : int
        Hamming distance at or under which a stored hash is a candidate, unless the brand has
        its own threshold (:meth:`set_brand_distance`).

    Thread safety: mutations are serialised by a lock; searches take none (the index is
    copy-on-write and the id maps are only ever extended or have entries replaced atomically).
    """

    def __init__(self, default_distance: int = DEFAULT_MAX_DISTANCE) -> None:
        self.default_distance = default_distance
        self.version = 0
        self._index = HammingIndex()
        self._variants = VariantCodes()
        self._key_of: dict[str, int] = {}
        self._ref_of: dict[int, tuple[str, str]] = {}
        self._brand_distance: dict[str, int] = {}
        self._next_key = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._key_of)

    @property
    def n_hashes(self) -> int:
        return len(self._index)

    def nbytes(self) -> int:
        return self._index.nbytes()

    def __contains__(self, reference_id: str) -> bool:
        return reference_id in self._key_of

    def add(self, reference_id: str, brand_id: str, hashes: Sequence[tuple[str, int]]) -> bool:
        """Add a reference's hashes; False if it is already indexed."""
        if not hashes:
            return False
        with self._lock:
            if reference_id in self._key_of:
                return False
            key = self._next_key
            self._next_key += 1
            self._ref_of[key] = (reference_id, brand_id)
            self._key_of[reference_id] = key
            self._index.add(
                np.fromiter((v for _, v in hashes), dtype=np.uint64, count=len(hashes)),
                np.full(len(hashes), key, dtype=np.int32),
                np.fromiter(
                    (self._variants.code(n) for n, _ in hashes), dtype=np.uint8, count=len(hashes)
                ),
            )
            return True

    def remove(self, reference_id: str) -> bool:
        with self._lock:
            key = self._key_of.pop(reference_id, None)
            if key is None:
                return False
            self._index.remove(key)
            self._ref_of.pop(key, None)
            return True

    def set_brand_distance(self, brand_id: str, distance: int | None) -> None:
        if distance is None:
            self._brand_distance.pop(brand_id, None)
        else:
            self._brand_distance[brand_id] = distance

    def brand_distance(self, brand_id: str) -> int:
        return self._brand_distance.get(brand_id, self.default_distance)

    def search(self, views: Sequence[HashVariant]) -> list[Candidate]:
        """Every stored variant within its brand's distance of any query view.

        Returns the best (smallest distance) candidate per reference, nearest first.
        """
        if not views or len(self._index) == 0:
            return []
        radius = max([self.default_distance, *self._brand_distance.values()])
        queries = np.fromiter((v.value for v in views), dtype=np.uint64, count=len(views))
        best: dict[str, Candidate] = {}
        for view, found in zip(views, self._index.search(queries, radius), strict=True):
            for key, code, dist in zip(
                found.ref_keys.tolist(),
                found.variants.tolist(),
                found.distances.tolist(),
                strict=True,
            ):
                ref = self._ref_of.get(key)
                if ref is None:
                    continue
                ref_id, brand_id = ref
                if dist > self.brand_distance(brand_id):
                    continue
                prev = best.get(ref_id)
                if prev is None or dist < prev.distance:
                    best[ref_id] = Candidate(
                        ref_id, brand_id, self._variants.name(code), view.variant, dist
                    )
        return sorted(best.values(), key=lambda c: (c.distance, c.reference_id))

    def brands(self) -> Iterable[str]:
        return {b for _, b in self._ref_of.values()}


@dataclass
class MatchReport:
    """What the engine found for one listing image."""

    matches: list[Candidate] = field(default_factory=list)
    rejected: list[tuple[Candidate, str]] = field(default_factory=list)

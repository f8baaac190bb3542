"""Match listing images against every brand's reference catalog.

Two stages. The cheap stage hashes the query (a few views) and asks the :class:`CatalogIndex`
for every stored reference variant within a Hamming distance. The verification stage compares
the query with each candidate reference's pixels after alignment and keeps only the matches it
can stand behind; the rejected candidates are returned separately, with the reason, for
debugging, never as matches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from detector.images import (
    CLEAN,
    STRIPS,
    DecodedImage,
    HashVariant,
    ImageLimits,
    ImageRejected,
    decode,
    hash_query,
    view_kind,
)
from detector.index import HammingIndex
from detector.verify import Verification, VerifyView, verify
from detector.verify import prepare_query as prepare_view

DEFAULT_MAX_DISTANCE = 12
#: The caption-suppressed views (``images.CLEAN``) are compared only with each other, and at
#: most this distance (or the brand's own, if lower): filtering away thin strokes makes images
#: more alike, so the same number of differing bits means more than on the plain hash.
CLEAN_MAX_DISTANCE = 10
#: Strips (``images.STRIPS``) are compared only with the same strip, at most this distance: a
#: strip is a third of the photo, and many photos share a similar one.
STRIP_MAX_DISTANCE = 6
#: Largest distance per view kind (:func:`images.view_kind`); whole-frame views use the brand's.
KIND_MAX_DISTANCE: dict[str, int] = {
    CLEAN: CLEAN_MAX_DISTANCE,
    **{name: STRIP_MAX_DISTANCE for name in STRIPS},
}


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
        self._kinds: list[str] = []
        self._lock = threading.Lock()

    def code(self, name: str) -> int:
        found = self._codes.get(name)
        if found is not None:
            return found
        with self._lock:
            if name not in self._codes:
                if len(self._names) >= 255:
                    raise ValueError("more than 255 distinct variant names")
                self._kinds.append(view_kind(name))
                self._codes[name] = len(self._names)
                self._names.append(name)
            return self._codes[name]

    def name(self, code: int) -> str:
        return self._names[code]

    def kind(self, code: int) -> str:
        """:func:`images.view_kind` of the variant (computed once per name)."""
        return self._kinds[code]


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

        Returns the best (smallest distance) candidate per reference, nearest first. Ties,
        common among look-alike references (one product photo carrying different marks), are
        broken by the distances of all the query's views summed (a view that found nothing
        within the search radius counts as one more than the radius): a caption moves every
        look-alike's best distance alike, while the true reference stays nearer on the views
        the caption disturbed less.
        """
        if not views or len(self._index) == 0:
            return []
        radius = max([self.default_distance, *self._brand_distance.values()])
        queries = np.fromiter((v.value for v in views), dtype=np.uint64, count=len(views))
        best: dict[str, Candidate] = {}
        # per reference: the nearest distance found for each query view
        near: dict[str, list[int]] = {}
        for i, (view, found) in enumerate(
            zip(views, self._index.search(queries, radius), strict=True)
        ):
            kind = view_kind(view.variant)
            kind_limit = KIND_MAX_DISTANCE.get(kind)
            for key, code, dist in zip(
                found.ref_keys.tolist(),
                found.variants.tolist(),
                found.distances.tolist(),
                strict=True,
            ):
                ref = self._ref_of.get(key)
                if ref is None:
                    continue
                if self._variants.kind(code) != kind:
                    continue
                variant = self._variants.name(code)
                ref_id, brand_id = ref
                per_view = near.setdefault(ref_id, [radius + 1] * len(views))
                per_view[i] = min(per_view[i], dist)
                limit = self.brand_distance(brand_id)
                if kind_limit is not None:
                    limit = min(limit, kind_limit)
                if dist > limit:
                    continue
                prev = best.get(ref_id)
                if prev is None or dist < prev.distance:
                    best[ref_id] = Candidate(ref_id, brand_id, variant, view.variant, dist)
        return sorted(
            best.values(), key=lambda c: (c.distance, sum(near[c.reference_id]), c.reference_id)
        )

    def brands(self) -> Iterable[str]:
        return {b for _, b in self._ref_of.values()}


@dataclass(frozen=True)
class VerifiedMatch:
    """A candidate the verification stage accepted, with its evidence."""

    candidate: Candidate
    verification: Verification


@dataclass(frozen=True)
class RejectedCandidate:
    candidate: Candidate
    reason: str
    score: float


@dataclass(frozen=True)
class ImageReport:
    """Everything the engine found for one image."""

    decoded: DecodedImage | None
    views: list[HashVariant]
    matches: list[VerifiedMatch]
    rejected: list[RejectedCandidate]
    error: ImageRejected | None = None


ReferenceViews = Callable[[str], VerifyView | None]


class ImageMatcher:
    """Both stages for one query image: hash views -> index candidates -> verification.

    Parameters
    ----------
    catalog : CatalogIndex
        The reference index.
    reference_view : callable
        ``reference_id -> VerifyView | None``: the prepared reference (callers cache these).
    max_candidates : int
        Candidates verified per image (nearest first); the rest are reported as not verified.
    """

    def __init__(
        self,
        catalog: CatalogIndex,
        reference_view: ReferenceViews,
        *,
        limits: ImageLimits | None = None,
        max_candidates: int = 5,
    ) -> None:
        self.catalog = catalog
        self.reference_view = reference_view
        self.limits = limits or ImageLimits()
        self.max_candidates = max_candidates

    def match(self, data: bytes) -> ImageReport:
        try:
            decoded = decode(data, self.limits)
        except ImageRejected as exc:
            return ImageReport(None, [], [], [], error=exc)
        views = hash_query(decoded)
        candidates = self.catalog.search(views)
        if not candidates:
            return ImageReport(decoded, views, [], [])
        try:
            query_view = prepare_view(data)
        except ImageRejected as exc:  # decodable for hashing but not for verification
            return ImageReport(decoded, views, [], [], error=exc)
        matches: list[VerifiedMatch] = []
        rejected: list[RejectedCandidate] = []
        for i, cand in enumerate(candidates):
            if i >= self.max_candidates:
                rejected.append(RejectedCandidate(cand, "not verified (candidate limit)", 0.0))
                continue
            ref_view = self.reference_view(cand.reference_id)
            if ref_view is None:
                rejected.append(RejectedCandidate(cand, "reference image unavailable", 0.0))
                continue
            result = verify(query_view, ref_view)
            if result.accepted:
                matches.append(VerifiedMatch(cand, result))
            else:
                rejected.append(RejectedCandidate(cand, result.reason, result.score))
        matches.sort(key=lambda m: (-m.verification.score, m.candidate.distance))
        return ImageReport(decoded, views, matches, rejected)

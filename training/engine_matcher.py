"""Adapters that put fakeguard's image engine behind the evaluation's Matcher protocol."""

from __future__ import annotations

from detector import images
from detector.matching import CatalogIndex


class FirstStageMatcher:
    """Hash views + catalog index only, no verification (to measure the cheap stage alone)."""

    name = "first_stage"

    def __init__(self, max_distance: int = 10) -> None:
        self.index = CatalogIndex(default_distance=max_distance)

    def add_reference(self, ref_id: str, data: bytes) -> None:
        decoded = images.decode(data, draft=False)
        hashes = images.hash_reference(decoded)
        self.index.add(ref_id, "brand", [(h.variant, h.value) for h in hashes])

    def query(self, data: bytes) -> list[str]:
        try:
            decoded = images.decode(data)
        except images.ImageRejected:
            return []
        return [c.reference_id for c in self.index.search(images.hash_query(decoded))]


class EngineMatcher:
    """The full engine: stage 1 (hash views + index) and stage 2 (verification)."""

    name = "fakeguard"

    def __init__(self, max_distance: int = 12, max_candidates: int = 5) -> None:
        from detector.matching import ImageMatcher
        from detector.verify import VerifyView, prepare_reference

        self._prepare = prepare_reference
        self.index = CatalogIndex(default_distance=max_distance)
        self.views: dict[str, VerifyView] = {}
        self.matcher = ImageMatcher(self.index, self.views.get, max_candidates=max_candidates)

    def add_reference(self, ref_id: str, data: bytes) -> None:
        decoded = images.decode(data, draft=False)
        hashes = images.hash_reference(decoded)
        self.index.add(ref_id, "brand", [(h.variant, h.value) for h in hashes])
        self.views[ref_id] = self._prepare(data)

    def query(self, data: bytes) -> list[str]:
        report = self.matcher.match(data)
        return [m.candidate.reference_id for m in report.matches]

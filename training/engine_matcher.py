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

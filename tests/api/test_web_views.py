"""Formatting helpers of the review pages."""

from __future__ import annotations

from api.web.views import Region, differing_regions


def test_differing_regions_become_boxes_and_malformed_ones_are_skipped() -> None:
    evidence = {
        "differing_regions": [
            [0.1, 0.8, 0.9, 1.0, "overlay"],
            [0.5, 0.5, 0.4, 0.6, "replaced"],  # empty box
            ["a", 0, 1, 1, "changed"],  # not numbers
            [0.2, 0.2],  # too short
            [-0.5, 0.1, 1.5, 0.3, "<script>"],  # clipped; unknown label
        ]
    }
    assert differing_regions(evidence) == [
        Region(0.1, 0.8, 0.8, 0.2, "overlay"),
        Region(0.0, 0.1, 1.0, 0.2, "changed"),
    ]
    assert differing_regions({}) == []

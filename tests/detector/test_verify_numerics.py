"""The comparison's numeric shortcuts give exactly what their plain numpy definitions give.

Each shortcut replaced a slower expression with one that must be bit-identical (verdicts and
scores depend on every value); these tests state the definitions and compare on random inputs
shaped like the comparison's own: grids with many repeated values and bins of every size.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detector import verify


def _bin_medians_by_definition(idx: np.ndarray, values: np.ndarray, bins: int) -> np.ndarray:
    out = np.full(bins, np.nan, dtype=values.dtype)
    for b in range(bins):
        members = np.sort(values[idx == b])
        if members.size >= 8:
            out[b] = members[members.size // 2]
    return out


@pytest.mark.parametrize("seed", range(40))
def test_bin_medians_are_each_bins_middle_value(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3000))
    bins = 32
    # skewed bins: some hold most values, some fewer than 8, some none
    idx = np.minimum(rng.geometric(rng.uniform(0.05, 0.5), n) - 1, bins - 1).astype(np.int32)
    values = (rng.random(n) * 256).astype(np.float32)
    if seed % 2:
        values = np.round(values / 16) * 16  # plain areas: long runs of one value
    values = np.minimum(values, np.float32(255.0))
    counts = np.bincount(idx, minlength=bins)
    got = verify._bin_medians(idx, values.copy(), counts)
    assert got.dtype == values.dtype
    np.testing.assert_array_equal(got, _bin_medians_by_definition(idx, values, bins))


def test_bin_medians_of_nothing_are_all_missing() -> None:
    counts = np.zeros(32, np.intp)
    got = verify._bin_medians(np.zeros(0, np.int32), np.zeros(0, np.float32), counts)
    assert np.isnan(got).all()


@pytest.mark.parametrize("seed", range(20))
def test_chroma_percentile_is_that_of_both_planes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(8, 120, 2))
    img = (rng.random((h, w, 3)) * 255).astype(np.float32)
    if seed % 2:
        img = np.round(img / 8) * 8
    img = cv2.GaussianBlur(img, (3, 3), 0)
    valid = rng.random((h, w)) < rng.uniform(0.05, 1.0)
    valid[0, 0] = True
    expected = float(np.percentile(np.abs(img[:, :, 1:][valid] - 128.0), 99))
    assert verify._chroma_p99(img, valid) == expected

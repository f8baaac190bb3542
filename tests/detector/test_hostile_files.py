"""The decode path against the hostile-file corpus (tests/support/hostile.py).

Every file gets its promised outcome (a rejection code, or decoded like any image) and stays
within the stated bounds: at most TIME_BOUND_S seconds and MEMORY_BOUND_MB of peak RSS growth
per file, both decode paths (upload and scoring) together, measured in a fresh subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from detector import images
from tests.support.hostile import BY_NAME, CORPUS, MEMORY_BOUND_MB, TIME_BOUND_S, Hostile

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("case", CORPUS, ids=lambda h: h.name)
def test_each_hostile_file_gets_its_outcome(case: Hostile) -> None:
    data = case.data()
    for draft in (False, True):
        try:
            decoded = images.decode(data, images.ImageLimits(), draft=draft)
        except images.ImageRejected as exc:
            assert case.allows(exc.code), f"{case.name}: rejected as {exc.code}: {exc.reason}"
            assert exc.reason
            continue
        assert case.allows("accepted"), f"{case.name} was accepted; expected {case.reject}"
        assert images.hash_reference(decoded)


@pytest.mark.parametrize("path", ["hashing", "verification"])
def test_every_hostile_file_within_time_and_memory_bounds(tmp_path: Path, path: str) -> None:
    """Each decode path on its own: hashing (upload and scoring) and stage-2 verification."""
    for case in CORPUS:
        (tmp_path / f"{case.name}.bin").write_bytes(case.data())
    flag = ["--verify"] if path == "verification" else []
    run = subprocess.run(
        [sys.executable, "-m", "tests.support.hostile", str(tmp_path), *flag],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    results = json.loads(run.stdout)
    assert set(results) == {c.name for c in CORPUS}
    over = {
        name: r
        for name, r in results.items()
        if float(r["seconds"]) > TIME_BOUND_S
        or (r["peak_mb"] is not None and float(r["peak_mb"]) > MEMORY_BOUND_MB)
    }
    assert not over, f"over the bounds ({TIME_BOUND_S} s, {MEMORY_BOUND_MB} MB): {over}"
    for name, r in results.items():
        assert BY_NAME[name].allows(str(r["outcome"])), (name, r)


def test_huge_exif_orientation_applied_without_rewriting_the_block() -> None:
    # Regression: ImageOps.exif_transpose re-serialised the whole EXIF block (0.8 s for 8 MB,
    # about 2 s at the 20 MB byte cap).
    data = BY_NAME["png_8mb_exif"].data()
    start = time.process_time()
    decoded = images.decode(data, images.ImageLimits())
    assert time.process_time() - start < 0.4
    assert decoded.width == 300 and decoded.height == 200  # as stored
    assert decoded.frame.shape[0] > decoded.frame.shape[1]  # orientation 8: now portrait


@pytest.mark.parametrize("name", ["png_million_chunks", "jpeg_million_segments"])
def test_block_floods_are_refused_before_pillow_walks_them(name: str) -> None:
    # Regression: Pillow parsed a million empty PNG chunks for 4 s before the first pixel.
    start = time.process_time()
    with pytest.raises(images.ImageRejected) as err:
        images.open_image(BY_NAME[name].data(), images.ImageLimits())
    assert err.value.code == "too_complex"
    assert time.process_time() - start < 0.5


def test_a_normal_image_has_few_blocks() -> None:
    from tests.support.images import product_photo

    for fmt in ("JPEG", "PNG", "GIF"):
        kind, n = images._count_blocks(product_photo(1, 300, fmt=fmt))
        assert kind and n < 50


def test_large_images_reduced_in_stripes_match_a_whole_reduction() -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (4500, 4200, 4), dtype=np.uint8), "RGBA")
    striped = images.reduce_large(img)
    assert striped.size == img.reduce(2).size
    assert np.array_equal(np.asarray(striped), np.asarray(img.reduce(2)))


def test_exif_that_cannot_be_rewritten_is_no_crash() -> None:
    # Regression: ImageOps.exif_transpose rewrote this EXIF block and raised struct.error (not an
    # ImageRejected): a 500 on reference upload. Orientation 6 is still applied.
    decoded = images.decode(BY_NAME["jpeg_huge_exif"].data(), images.ImageLimits())
    assert decoded.quality > 5

"""What a reference view keeps between verifications must not change any result.

:func:`detector.verify._compare` caches what depends on the reference alone (its grid, gradient
and chroma percentile) on the reference's view, which the API keeps across requests. Results
must be exactly those computed without the cache, whatever queries came before, in whatever
order, from however many threads.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from detector import verify
from tests.detector.test_verify import ATTACKS, _bytes, _jacket, _product

REFERENCE_BYTES = _bytes(_product("star"), "JPEG", quality=92)


def _inset(img: Image.Image) -> Image.Image:
    """The photo small in a big frame: coarser than the comparison grid."""
    canvas = Image.new("RGB", (900, 900), (255, 255, 255))
    canvas.paste(img.resize((380, 380), Image.Resampling.LANCZOS), (300, 260))
    return canvas


def _queries() -> dict[str, bytes]:
    star = _product("star")
    out = {name: _bytes(attack(star)) for name, attack in sorted(ATTACKS.items())}
    out["grey"] = _bytes(ImageOps.grayscale(star).convert("RGB"), "JPEG", quality=90)
    out["inset"] = _bytes(_inset(star), "JPEG", quality=90)
    out["other_mark"] = _bytes(_product("bars"), "JPEG", quality=90)
    out["no_mark"] = _bytes(_product(None), "JPEG", quality=90)
    out["jacket"] = _bytes(_jacket(True), "JPEG", quality=90)
    return out


QUERIES = _queries()


@pytest.fixture(scope="module")
def queries() -> dict[str, verify.VerifyView]:
    return {name: verify.prepare_query(data) for name, data in QUERIES.items()}


def _result(query: verify.VerifyView, reference: verify.VerifyView) -> tuple[Any, ...]:
    features, _ = verify.measure(query, reference)
    return features, verify.verify(query, reference)


@pytest.fixture(scope="module")
def uncached(queries: dict[str, verify.VerifyView]) -> Iterator[dict[str, tuple[Any, ...]]]:
    """Every query against a fresh reference view, with the cache bypassed altogether."""
    original = verify._cached

    def bypass(view: verify.VerifyView, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        return make()

    verify._cached = bypass  # type: ignore[assignment]
    try:
        out = {name: _result(q, verify.prepare(REFERENCE_BYTES)) for name, q in queries.items()}
    finally:
        verify._cached = original  # type: ignore[assignment]
    for view in verify.prepare(REFERENCE_BYTES), verify.prepare(REFERENCE_BYTES):
        assert not view._derived  # nothing was kept while bypassed
    yield out


def test_queries_exercise_every_cached_path(
    queries: dict[str, verify.VerifyView], uncached: dict[str, tuple[Any, ...]]
) -> None:
    """The queries below reach the comparison at the grid's resolution (fully inside the frame
    and cropped), coarser than the grid (not cached) and in grey only (one channel)."""
    reference = verify.prepare(REFERENCE_BYTES)
    rh, rw = reference.shape
    f = verify.GRID / max(rh, rw)
    per_cell = {}
    for name, q in queries.items():
        features, detail = verify.measure(q, reference)
        if features:
            align = detail[0]
            per_cell[name] = math.sqrt(abs(float(np.linalg.det(align.matrix[:, :2])))) / f
    assert per_cell["inset"] < 0.9 <= per_cell["mirror"], per_cell
    assert uncached["crop"][0]["coverage"] < 0.97
    gw, gh = round(rw * f), round(rh * f)
    assert set(reference._derived) == {
        ("grid", gw, gh),
        ("chroma_p99_all_valid", gw, gh),
        ("grad", gw, gh, 3),  # colour queries
        ("grad", gw, gh, 1),  # the grey one
    }
    for value in reference._derived.values():
        if isinstance(value, np.ndarray):
            assert not value.flags.writeable
    # the percentile over the whole grid is kept only from a query that covers the whole grid
    cropped = verify.prepare(REFERENCE_BYTES)
    verify.measure(queries["crop"], cropped)
    assert set(cropped._derived) == {("grid", gw, gh), ("grad", gw, gh, 3)}


def test_fresh_reference_view_gives_uncached_results(
    queries: dict[str, verify.VerifyView], uncached: dict[str, tuple[Any, ...]]
) -> None:
    for name, q in queries.items():
        assert _result(q, verify.prepare(REFERENCE_BYTES)) == uncached[name], name


def test_reused_reference_view_gives_uncached_results(
    queries: dict[str, verify.VerifyView], uncached: dict[str, tuple[Any, ...]]
) -> None:
    """One view for all queries, in order, reversed and interleaved with another reference: no
    query's state leaks into the next."""
    other = verify.prepare(_bytes(_jacket(True), "JPEG", quality=92))
    names = list(queries)
    grey_first = ["grey"] + [n for n in names if n != "grey"]
    for order in (names, names[::-1], names[1::2] + names[::2], grey_first):
        reference = verify.prepare(REFERENCE_BYTES)
        for name in order + order:
            assert _result(queries[name], reference) == uncached[name], name
            _result(queries[name], other)


def test_concurrent_verifications_on_one_reference_view(
    queries: dict[str, verify.VerifyView], uncached: dict[str, tuple[Any, ...]]
) -> None:
    """Threads start together on a cold view (all race to fill the cache) and keep going."""
    reference = verify.prepare(REFERENCE_BYTES)
    jobs = [name for _ in range(3) for name in queries]
    threads = 8
    start = threading.Barrier(threads)

    def run(i: int, name: str) -> tuple[str, tuple[Any, ...]]:
        if i < threads:  # jobs 0-7 each hold a thread until all eight are in
            start.wait(timeout=30)
        return name, _result(queries[name], reference)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(run, range(len(jobs)), jobs))
    assert len(results) == len(jobs)
    for name, result in results:
        assert result == uncached[name], name

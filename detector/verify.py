"""Stage-2 verification: is a listing photo a (transformed) copy of one reference photo?

The cheap stage (hashes in a Hamming index) cannot tell a reference from a look-alike: the same
product clip-art on the same background with another brand's mark sits within a few bits. This
module answers the question for ONE (query, reference) pair and says why:

1. **Align.** ORB keypoints (computed once per image by :func:`prepare`, for the image and its
   mirror) are matched with a ratio test and a similarity transform (rotation, uniform scale,
   translation; optionally after a horizontal flip) is fitted with RANSAC. This recovers crops,
   rotations, borders, mirrors and screenshots, and says where the reference sits in the query.
2. **Compare.** The query is warped into the reference's frame on a coarse grid (so that
   resampling, JPEG noise and small misregistration wash out), its tones are mapped onto the
   reference's with a monotone look-up table (gamma, brightness), and each pixel is compared with
   the reference's local range (a 3x3 min/max band, which tolerates one-cell misalignment).
3. **Explain.** From the comparison come physical measurements: how much of the reference is seen
   (coverage), how much of the reference's own structure (its edges) the query reproduces, the
   worst window of *missing* reference structure (a swapped or removed logo is a compact hole in
   the reference's structure), and, for each region that differs, whether it looks ADDED on top
   (new edges, the reference's structure still visible between them: overlaid text, watermarks) or
   REPLACED/REMOVED (the reference's own structure gone); and, with contrast relative to the
   reference's own local range, the densest mark-sized patch of its structure (faint included)
   that the query flattened: a dark mark taken off a dark product changes too few grey levels
   for the fixed-level comparison.
4. **Decide.** A small gradient-boosted tree ensemble over those measurements (monotone in the
   physical ones), trained offline by
   ``training/train_verifier.py`` on a corpus and attack family disjoint from the evaluation grid
   and stored as plain JSON in ``detector/data/verifier.json``, gives the score.

Everything here is deterministic (OpenCV's RNG is seeded before each RANSAC, single thread).
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from detector.images import (
    ImageLimits,
    ImageRejected,
    flatten,
    image_quality,
    open_image,
    orientation,
    reduce_large,
    trim_uniform_border,
)

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

MODEL_FILE = "verifier.json"
MODEL_VERSION = 1

#: ORB keypoints kept per image. A listing photo gets more than a reference: big captions and
#: screenshot chrome are full of strong corners that would otherwise use up the budget and leave
#: the product itself without keypoints (measured: with 500, a third of the photos under a large
#: Chinese caption could not be aligned; with 2,000, all of a sample of 60 could).
REFERENCE_FEATURES = 500
QUERY_FEATURES = 2000
#: Lowe ratio for the 2-NN test on Hamming distances.
RATIO = 0.8
#: RANSAC reprojection threshold, in pixels of the prepared (<= 384 px) query.
RANSAC_PX = 4.0
#: Fewer inliers than this: no alignment, rejected without comparing pixels.
MIN_INLIERS = 8
#: Plausible scales (query px per reference px, both prepared): beyond them the fit is degenerate.
MIN_SCALE, MAX_SCALE = 0.12, 6.0
#: A reference whose content (inside uniform margins) covers less than this share of its area
#: has a content box (see :func:`_content`) ...
CONTENT_BELOW = 0.9
#: ... widened by this share of the content's size on each side ...
TRIM_MARGIN = 0.03
#: ... found down to as little as this share of the frame's width or height.
TRIM_MIN_KEEP = 0.05
#: Longest side of the comparison grid laid over the reference.
GRID = 200
#: A pixel differs when the query leaves the reference's local range (its BANDxBAND min/max,
#: which absorbs up to two cells of misregistration) by more than this many grey levels ...
DIFF_LEVEL = 32.0
BAND = 5
#: ... or by more than this in CIE a* or b* (OpenCV 8-bit units).
CHROMA_LEVEL = 20.0
#: A cell of the reference is strongly coloured when CIE a* or b* is this far from grey ...
STRONG_COLOUR = 20.0
#: ... and has lost its colour in the query below this fraction of the reference's saturation.
COLOUR_KEPT = 0.35
#: More than this share of a logo-sized window of strong colour lost: the coloured mark is gone,
#: and the pair is rejected whatever the model says (see :func:`_colour_lost`).
COLOUR_LOST_VETO = 0.6
#: A query that kept less than GREYED_BELOW of the colour of the reference's coloured cells (the
#: median) is a greyed copy; it may be one only if this much of the reference is coloured
#: (otherwise the reference's colour is essentially its mark).
GREYED_BELOW = 0.15
GREY_COPY_MIN_COLOUR = 0.15
#: A differing region whose new edges away from the reference's coloured marks outnumber this
#: many times the coloured cells it covers is paint over the photo (see :func:`_painted_over`).
OVERLAY_REACH = 0.5
#: ... or whose new edges outnumber the reference's own edges it covers this many times (a
#: swapped mark adds about as much structure as it hides; a caption over a plain surface adds).
OVERLAY_ADDS = 2.0
#: Chroma gradients count this much towards edges (a mark of another colour, same grey).
CHROMA_EDGE_WEIGHT = 1.5
#: Gradient magnitude (grey levels per grid cell) above which a grid cell is an edge.
EDGE_LEVEL = 14.0
#: Pairs whose missing reference structure lies at least this much under paint (captions,
#: banners) are judged against the model's paint threshold (:meth:`_Model.threshold_for`).
PAINT_REGIME = 0.9
#: Differing regions smaller than this fraction of the compared area (of the reference's content,
#: when it has a content box, and then none under MIN_REGION_CELLS grid cells) are not reported.
MIN_REGION = 0.002
MIN_REGION_CELLS = 8

FEATURES: tuple[str, ...] = (
    "log_inliers",
    "inlier_ratio",
    "coverage",
    "diff_fraction",
    "ref_edges_reproduced",
    "worst_missing_small",
    "worst_missing_large",
    "worst_missing_mass",
    "removed_mass",
    "added_edge_ratio",
    "log_added_vs_missing",
    "largest_area",
    "largest_missing",
    "largest_added",
    "largest_added_vs_missing",
    "largest_energy_ratio",
    "largest_fill",
    "largest_aspect",
    "largest_extent",
    "n_regions",
    "regions_spread",
    "missing_under_paint",
    "flattened",
)


@dataclass(frozen=True, eq=False)
class VerifyView:
    """An image prepared for verification.

    Attributes
    ----------
    gray : ndarray of uint8, shape (h, w)
        Grayscale pixels (EXIF orientation applied, transparency flattened onto white), longest
        side at most ``max_side`` of :func:`prepare`.
    chroma : ndarray of uint8, shape (h, w, 2)
        CIE a*, b* (OpenCV's 8-bit Lab, 128 = grey) at the same size: a mark swapped for one of
        the same grey level but another colour is only visible here.
    points, descriptors : ndarray
        ORB keypoint positions (float32, (n, 2), in ``gray`` pixels) and descriptors (uint8,
        (n, 32)).
    mirror_points, mirror_descriptors : ndarray
        The same for the horizontally mirrored image, positions in mirrored pixels; empty for a
        reference (alignment mirrors the query, never the reference).
    width, height : int
        Size of the decoded image before it was bounded (after EXIF orientation).
    content : (x0, y0, x1, y1) or None
        For a reference (:func:`prepare_reference`), the box of ``gray`` (exclusive ends) that
        holds its content when uniform margins surround it; the smallest differing region the
        comparison reports is a share of the content's area, not of the whole image's. None:
        the whole image.
    """

    gray: U8
    chroma: U8
    points: F32
    descriptors: U8
    mirror_points: F32
    mirror_descriptors: U8
    width: int
    height: int
    content: tuple[int, int, int, int] | None = None
    #: What :func:`_compare` derives from this image alone when it is the reference (its grid,
    #: gradients, chroma percentile), kept for the next query compared with it: reference views
    #: are cached across requests. Read-only arrays; filled with ``setdefault``, so concurrent
    #: verifications at worst compute an entry twice (identically).
    _derived: dict[tuple[Any, ...], Any] = field(
        init=False, default_factory=dict, repr=False, compare=False
    )

    @property
    def shape(self) -> tuple[int, int]:
        h, w = self.gray.shape
        return int(h), int(w)


@dataclass(frozen=True)
class Verification:
    """The verdict on one (query, reference) pair, with the evidence behind it.

    Attributes
    ----------
    accepted : bool
        The query is a (transformed) copy of the reference photo.
    score : float
        0-1 confidence that it is the same photo.
    reason : str
        One human sentence.
    inliers : int
        Keypoint matches consistent with the fitted transform.
    coverage : float
        Fraction of the reference visible in the query.
    transform : str
        The fitted transform in words, e.g. ``"mirror+rotate 4°, scale 0.71, crop"``.
    differing_regions : list of (x0, y0, x1, y1, label)
        Boxes in fractions of the query's width and height, labelled ``overlay``,
        ``watermark``, ``replaced``, ``removed`` or ``changed``.
    features : dict
        The measurements the decision was made from (for reports and debugging).
    """

    accepted: bool
    score: float
    reason: str
    inliers: int
    coverage: float
    transform: str
    differing_regions: list[tuple[float, float, float, float, str]]
    features: dict[str, float] = field(default_factory=dict)


# --- preparation --------------------------------------------------------------------------------


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten transparency onto white; 16-bit and float images scaled by their range."""
    return flatten(img).convert("RGB")


def _orb(n_features: int) -> Any:
    return cv2.ORB_create(  # type: ignore[attr-defined]
        nfeatures=n_features, edgeThreshold=19, patchSize=19, fastThreshold=12
    )


def _features(gray: U8, n_features: int) -> tuple[F32, U8]:
    keypoints, descriptors = _orb(n_features).detectAndCompute(gray, None)
    if descriptors is None or not keypoints:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
    return points, np.asarray(descriptors, dtype=np.uint8)


def prepare_query(data: bytes) -> VerifyView:
    """:func:`prepare` for a listing photo (more keypoints: see :data:`QUERY_FEATURES`)."""
    return prepare(data, n_features=QUERY_FEATURES, mirror=True)


def prepare_reference(data: bytes) -> VerifyView:
    """:func:`prepare` for a brand's reference photo, with its content box (``trim``)."""
    return prepare(data, trim=True)


def _content(gray: U8) -> tuple[int, int, int, int] | None:
    """The box of ``gray`` that holds its content, or None to compare all of it.

    The content box of :func:`detector.images.trim_uniform_border` (one round: a product's own
    plain surface is content), widened by :data:`TRIM_MARGIN` of the content's size on each
    side; None when that leaves :data:`CONTENT_BELOW` of the image's area or more.
    """
    h, w = gray.shape
    _, (left, top, right, bottom) = trim_uniform_border(
        gray.astype(np.float32), min_keep=TRIM_MIN_KEEP, rounds=1
    )
    cw, ch = (1.0 - left - right) * w, (1.0 - top - bottom) * h
    x0 = max(0, math.floor(left * w - TRIM_MARGIN * cw))
    y0 = max(0, math.floor(top * h - TRIM_MARGIN * ch))
    x1 = min(w, math.ceil((1.0 - right) * w + TRIM_MARGIN * cw))
    y1 = min(h, math.ceil((1.0 - bottom) * h + TRIM_MARGIN * ch))
    if (x1 - x0) * (y1 - y0) > CONTENT_BELOW * w * h:
        return None
    return x0, y0, x1, y1


def prepare(
    data: bytes,
    *,
    max_side: int = 384,
    n_features: int = REFERENCE_FEATURES,
    mirror: bool = False,
    trim: bool = False,
) -> VerifyView:
    """Decode ``data`` and compute everything :func:`verify` needs from it, once.

    References go through :func:`prepare_reference`, listing photos through
    :func:`prepare_query`, which also computes the mirrored image's keypoints (``mirror``):
    alignment tries the query both ways round, so a reference needs none.

    ``trim`` finds the box inside uniform margins (``content``): on a small product on a big
    plain canvas, a look-alike with another small mark differs in a region too small, measured
    against the whole canvas, to be reported, though it is a fair share of the product.
    Raises :class:`detector.images.ImageRejected` for anything that is not a usable image (the
    same checks as hashing: format allow-list, size caps, decompression bombs, flat images).
    """
    limits = ImageLimits()
    img = open_image(data, limits)
    try:
        stored_width = img.size[0]
        if img.format == "JPEG":
            img.draft("RGB", (max_side, max_side))
        img.load()
        # the same hardened steps as hashing: orientation read by hand (exif_transpose rewrites
        # the EXIF block, slow and fragile on hostile ones), huge images reduced in stripes
        transpose = orientation(img)
        img = reduce_large(img)
        shrink = stored_width / img.size[0]  # JPEG draft decoding may have shrunk it
        if transpose is not None:
            img = img.transpose(transpose)
        rgb_img = _to_rgb(img)
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", f"the image is too large to decode: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        msg = str(exc)
        code = "truncated" if "truncated" in msg or "end of file" in msg.lower() else "not_an_image"
        raise ImageRejected(code, f"the image data cannot be decoded: {msg}") from exc
    width, height = round(rgb_img.size[0] * shrink), round(rgb_img.size[1] * shrink)
    rgb = np.asarray(rgb_img, dtype=np.uint8)
    if max(rgb_img.size) > max_side:
        k = max_side / max(rgb_img.size)
        size = (max(1, round(rgb_img.size[0] * k)), max(1, round(rgb_img.size[1] * k)))
        rgb = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    arr = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    lab = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab), dtype=np.uint8)
    # cv2.merge of the split planes: a numpy copy of the strided a*, b* view is ~10x slower
    chroma: U8 = np.asarray(cv2.merge(cv2.split(lab)[1:]), dtype=np.uint8)
    quality = image_quality(arr.astype(np.float32))
    if quality < limits.min_quality:
        raise ImageRejected(
            "too_flat",
            f"image quality {quality:.1f}/100 is below {limits.min_quality:.0f}: the image is too "
            "uniform to compare with a reference",
        )
    cv2.setNumThreads(1)
    arr = np.ascontiguousarray(arr)
    points, descriptors = _features(arr, n_features)
    if mirror:
        mirror_points, mirror_descriptors = _features(
            np.ascontiguousarray(arr[:, ::-1]), n_features
        )
    else:  # a reference: only queries are mirrored to align
        mirror_points, mirror_descriptors = (
            np.zeros((0, 2), np.float32),
            np.zeros((0, 32), np.uint8),
        )
    return VerifyView(
        gray=arr,
        chroma=chroma,
        points=points,
        descriptors=descriptors,
        mirror_points=mirror_points,
        mirror_descriptors=mirror_descriptors,
        width=width,
        height=height,
        content=_content(arr) if trim else None,
    )


# --- alignment ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Alignment:
    matrix: F64  # 2x3, reference pixels -> query pixels (mirror included)
    inliers: int
    matches: int
    mirrored: bool


def _match(ref_desc: U8, q_desc: U8) -> list[tuple[int, int]]:
    if len(ref_desc) < 2 or len(q_desc) < 2:
        return []
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(ref_desc, q_desc, k=2)
    out = []
    for pair in pairs:
        if len(pair) == 2 and pair[0].distance < RATIO * pair[1].distance:
            out.append((pair[0].queryIdx, pair[0].trainIdx))
    return out


def _fit(ref_pts: F32, q_pts: F32, matches: list[tuple[int, int]]) -> tuple[F64 | None, int]:
    if len(matches) < 4:
        return None, 0
    src = ref_pts[[m[0] for m in matches]]
    dst = q_pts[[m[1] for m in matches]]
    cv2.setRNGSeed(12345)
    matrix, mask = cv2.estimateAffinePartial2D(
        src,
        dst,
        method=cv2.RANSAC,
        ransacReprojThreshold=RANSAC_PX,
        maxIters=2000,
        confidence=0.995,
        refineIters=10,
    )
    if matrix is None or mask is None:
        return None, 0
    inl = mask.ravel().astype(bool)
    if inl.sum() >= 8:
        # second, tighter fit on the inliers: keypoints from coarse pyramid levels are imprecise
        cv2.setRNGSeed(12345)
        tight, mask2 = cv2.estimateAffinePartial2D(
            src[inl],
            dst[inl],
            method=cv2.RANSAC,
            ransacReprojThreshold=RANSAC_PX / 2,
            maxIters=500,
            confidence=0.995,
            refineIters=10,
        )
        if tight is not None and mask2 is not None and mask2.sum() >= 0.5 * inl.sum():
            matrix = tight
    return np.asarray(matrix, dtype=np.float64), int(mask.sum())


def _align(query: VerifyView, reference: VerifyView) -> _Alignment | None:
    best: _Alignment | None = None
    matches = _match(reference.descriptors, query.descriptors)
    matrix, inliers = _fit(reference.points, query.points, matches)
    if matrix is not None:
        best = _Alignment(matrix, inliers, len(matches), False)
    # the mirror is always tried: a symmetric product also aligns (badly) the other way round
    m_matches = _match(reference.descriptors, query.mirror_descriptors)
    m_matrix, m_inliers = _fit(reference.points, query.mirror_points, m_matches)
    if m_matrix is not None and (best is None or m_inliers > best.inliers):
        w = query.shape[1]
        flip = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        full = flip @ np.vstack([m_matrix, [0.0, 0.0, 1.0]])
        best = _Alignment(full[:2], m_inliers, len(m_matches), True)
    return best


# --- comparison ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Region:
    box: tuple[int, int, int, int]  # grid x0, y0, x1, y1 (exclusive)
    area: float  # fraction of the compared area
    missing: float  # fraction of the reference's edges in the box the query lacks
    added: float  # new query edges per reference edge in the box
    energy_ratio: float  # query / reference gradient energy in the region
    fill: float  # region pixels / box pixels
    label: str
    added_vs_missing: float = 0.0  # log((new edges + 1) / (missing reference edges + 1))


@dataclass
class _Comparison:
    features: dict[str, float]
    regions: list[_Region]
    grid_to_query: F64  # 2x3: grid cells -> prepared query pixels
    coverage: float


def _grad(img: F32) -> F32:
    gx = np.asarray(cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3), dtype=np.float32) / 4.0
    gy = np.asarray(cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3), dtype=np.float32) / 4.0
    return np.asarray(np.hypot(gx, gy), dtype=np.float32)


def _bin_medians(idx: npt.NDArray[np.int32], values: F32, counts: npt.NDArray[np.intp]) -> F32:
    """Per bin, the middle one of its ``values`` (grey levels in [0, 256)) in order, the upper
    of the two for an even count; NaN for a bin with fewer than 8 values.

    In the order of bin * 512 + value (a float64 holds both exactly) each bin's median is at
    its middle. A partition around the middles of the bins that have one puts exactly those in
    their sorted places: 3x faster than sorting on the corpus's grids, where large plain areas
    repeat values.
    """
    keys = idx * 512.0 + values
    ends = np.cumsum(counts)
    full = counts >= 8
    middle = (ends - counts + counts // 2)[full]
    keys.partition(middle)
    mid_keys = keys[middle]
    medians = np.full(counts.shape[0], np.nan, dtype=values.dtype)
    medians[full] = mid_keys - np.floor(mid_keys / 512.0) * 512.0
    return medians


def _tone_map(ref: F32, query: F32, valid: npt.NDArray[np.bool_]) -> tuple[U8, float]:
    """Monotone LUT from reference grey levels to the query's (robust to overlays: medians)."""
    bins = 32
    r = ref[valid]
    q = query[valid]
    idx = np.clip((r / 256.0 * bins).astype(np.int32), 0, bins - 1)
    centres = (np.arange(bins) + 0.5) * (256.0 / bins)
    counts = np.bincount(idx, minlength=bins)
    medians = _bin_medians(idx, q, counts)
    ok = ~np.isnan(medians)
    if ok.sum() < 2:
        lut = np.arange(256, dtype=np.float64)
        residual = 0.0
    else:
        xs, ys = centres[ok], medians[ok]
        # a tone change keeps contrast: slopes between 0.35 and 3 (a flat map would explain away
        # any content, and a steep one any noise)
        slopes = np.clip(np.diff(ys) / np.diff(xs), 0.35, 3.0)
        rebuilt = np.concatenate([[0.0], np.cumsum(slopes * np.diff(xs))])
        anchor = int(np.argmax(counts[ok]))
        mono = rebuilt - rebuilt[anchor] + ys[anchor]
        lut = np.interp(np.arange(256), xs, mono, left=np.nan, right=np.nan)
        lo_slope, hi_slope = float(slopes[0]), float(slopes[-1])
        below = np.arange(256) < xs[0]
        above = np.arange(256) > xs[-1]
        lut[below] = mono[0] - (xs[0] - np.arange(256)[below]) * lo_slope
        lut[above] = mono[-1] + (np.arange(256)[above] - xs[-1]) * hi_slope
        # how far the mapping is from identity (gamma, brightness): a physical tone change
        residual = float(np.mean(np.abs(lut - np.arange(256)))) / 255.0
    return np.clip(lut, 0, 255).astype(np.uint8), residual


def _saturation(img: F32) -> F32:
    """Per cell, the larger distance of CIE a* and b* from grey (128).

    np.maximum of the two planes: ``.max(axis=2)`` over an axis of length 2 is ~30x slower.
    """
    return np.asarray(
        np.maximum(np.abs(img[:, :, 1] - 128.0), np.abs(img[:, :, 2] - 128.0)), dtype=np.float32
    )


def _strong_colour(ref: F32, valid: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Cells of the reference whose CIE a* or b* is far from grey (a coloured mark)."""
    sat = _saturation(ref)
    return np.asarray(valid & (sat > STRONG_COLOUR))


def _painted_over(
    diff: npt.NDArray[np.bool_],
    strong: npt.NDArray[np.bool_],
    added: npt.NDArray[np.bool_],
    ref_edges: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """Differing regions painted across the reference well beyond its coloured marks.

    A caption across a mark brings new structure over the plain surface around the mark too; a
    mark swapped for another stays within about the old mark's footprint and adds about as much
    structure as it hides. A region (the glyphs of a line joined) counts as painted over when
    its new edges away from the reference's strong colour outnumber ``OVERLAY_REACH`` times the
    strongly coloured cells it covers, or its new edges outnumber ``OVERLAY_ADDS`` times the
    reference edges it covers. Returned grown by the joining distance, so that the gaps between
    strokes and the cells under an outline count as under the paint.
    """
    # the glyphs of one line of text are one region
    k = max(5, round(0.04 * max(diff.shape)) | 1)
    joined = cv2.morphologyEx(diff.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    n, labels = cv2.connectedComponents(joined, connectivity=8)
    if n <= 1:
        return np.zeros(diff.shape, bool)
    away = cv2.dilate(strong.astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
    flat = labels.ravel()
    added_away = np.bincount(flat, weights=(added & away).ravel(), minlength=n)
    strong_in = np.bincount(flat, weights=strong.ravel(), minlength=n)
    added_in = np.bincount(flat, weights=added.ravel(), minlength=n)
    edges_in = np.bincount(flat, weights=ref_edges.ravel(), minlength=n)
    over = (added_away > np.maximum(20.0, OVERLAY_REACH * strong_in)) | (
        added_in > np.maximum(20.0, OVERLAY_ADDS * edges_in)
    )
    over[0] = False
    return np.asarray(cv2.dilate(over[labels].astype(np.uint8), np.ones((k, k), np.uint8)) > 0)


def _colour_lost(
    ref: F32,
    query: F32,
    valid: npt.NDArray[np.bool_],
    strong: npt.NDArray[np.bool_],
    painted: npt.NDArray[np.bool_],
) -> float:
    """Worst logo-sized window: the share of the reference's strongly coloured cells (``strong``,
    see :func:`_strong_colour`) that the query shows without their colour (0 when the reference
    has too little strong colour).

    A coloured mark taken off a product leaves the product's own surface, which is often of the
    mark's grey level: neither the grey-level comparison nor the tone maps (which may map the
    mark's hue onto grey) see it. Tone changes and watermarks keep at least part of a colour;
    cells under paint laid across the photo (``painted``, see :func:`_painted_over`: a caption's
    strokes and white outline across the mark) are hidden, not lost, and are not counted. A
    greyed copy of a photo whose colour is spread over much of it (not only its mark) is still a
    copy and is not counted.
    """
    r_sat = _saturation(ref)
    q_sat = _saturation(query)
    if int(strong.sum()) < max(16, round(0.002 * int(valid.sum()))):
        return 0.0
    coloured = valid & (r_sat > 8.0)
    # greyed: the query has lost the colour of (nearly) all the reference's coloured cells
    greyed = float(np.median(q_sat[coloured] / r_sat[coloured])) < GREYED_BELOW
    if greyed and float(coloured.sum()) >= GREY_COPY_MIN_COLOUR * float(valid.sum()):
        return 0.0
    # a mark taken off leaves the product's smooth surface; colour lost under new structure
    # painted over the mark (a caption's strokes and outline) is hidden, not removed
    lost = strong & (q_sat < COLOUR_KEPT * r_sat) & ~painted
    gh, gw = valid.shape
    k = max(5, round(0.12 * max(gw, gh)) | 1)
    s_sum = cv2.boxFilter(strong.astype(np.float32), -1, (k, k), normalize=False)
    l_sum = cv2.boxFilter(lost.astype(np.float32), -1, (k, k), normalize=False)
    ok = s_sum >= max(8.0, 0.05 * k * k)
    if not ok.any():
        return float(lost.sum()) / float(strong.sum())
    return float(np.max(np.where(ok, l_sum / np.maximum(s_sum, 1.0), 0.0)))


#: A reference cell holds structure, faint included, when its tone-mapped 3x3 range exceeds this
#: many grey levels (or CIE a*/b* units) ...
FAINT_RANGE = 6.0
#: ... and the query has flattened it when its own 3x3 range there is below this share of it.
FAINT_KEPT = 0.35
#: Side of the window (fraction of the grid's longer side) in which flattened structure is
#: counted: about a small mark's size.
FAINT_WINDOW = 0.10
#: Gaussian blurs (grid cells) tried on the reference to match a softer query.
BLUR_STEPS = (0.5, 0.8, 1.2, 1.7, 2.4)
#: More than this share of a mark-sized window flattened: the reference's mark has been taken
#: off, and the pair is rejected whatever the model says (see :func:`_flattened`).
FLATTENED_VETO = 0.5


def _matched_blur(pred: F32, grad_query: F32, kept_edges: npt.NDArray[np.bool_]) -> float:
    """Gaussian sigma (grid cells) that makes the reference as soft as the query.

    Measured on the reference edges the query reproduces: the median ratio of the query's
    gradient (``grad_query``) to the reference's; the reference is blurred in steps until its
    own ratio falls to that (0 when the query is about as sharp, as copies at full resolution
    are).
    """
    g_ref = _grad(pred)
    sel = kept_edges & (g_ref > EDGE_LEVEL)
    if int(sel.sum()) < 20:
        return 0.0
    g_ref_sel = g_ref[sel]
    target = float(np.median(grad_query[sel] / g_ref_sel))
    sigma = 0.0
    if target < 0.9:
        for s in BLUR_STEPS:
            sigma = s
            blurred = _grad(np.asarray(cv2.GaussianBlur(pred, (0, 0), s), np.float32))
            if float(np.median(blurred[sel] / g_ref_sel)) <= target:
                break
    return sigma


def _flattened(
    mapped: list[tuple[F32, F32]],
    grad_query: F32,
    valid: npt.NDArray[np.bool_],
    painted: npt.NDArray[np.bool_],
    kept_edges: npt.NDArray[np.bool_],
) -> tuple[float, float, tuple[int, int, int, int]]:
    """The densest mark-sized window of reference structure, faint included, that the query
    flattened (share of the window's cells), the blur applied to the reference first, and that
    window (grid x0, y0, x1, y1).

    The grey-level comparison needs :data:`DIFF_LEVEL` of difference, and the edge maps
    :data:`EDGE_LEVEL` of gradient: a dark mark on a dark product (a navy badge on a blue box)
    taken off leaves no trace in either. Here contrast is relative: a cell of the tone-mapped
    reference (``mapped``: per channel, the reference through the tone map and the query)
    whose local range exceeds :data:`FAINT_RANGE` is flattened when the query's local range
    there is below :data:`FAINT_KEPT` of it, and not under paint. Thin lines of such cells
    (half-cell misregistration along an edge, fine print) are opened away: a removed mark
    leaves a solid patch. A softer query (downscaled, screenshotted) flattens fine structure
    everywhere: the reference is first blurred to the query's sharpness (:func:`_matched_blur`,
    from ``grad_query``, the gradient of the query's grey channel).
    """
    sigma = _matched_blur(mapped[0][0], grad_query, kept_edges)
    k3 = np.ones((3, 3), np.uint8)
    lost = np.zeros(valid.shape, bool)
    for pred, q in mapped:
        p = np.asarray(cv2.GaussianBlur(pred, (0, 0), sigma), np.float32) if sigma else pred
        r_rng = cv2.dilate(p, k3) - cv2.erode(p, k3)
        q_rng = cv2.dilate(q, k3) - cv2.erode(q, k3)
        lost |= valid & (r_rng > FAINT_RANGE) & (q_rng < FAINT_KEPT * r_rng)
    lost &= ~painted
    lost = cv2.morphologyEx(lost.astype(np.uint8), cv2.MORPH_OPEN, k3)
    gh, gw = valid.shape
    k = max(5, round(FAINT_WINDOW * max(gw, gh)) | 1)
    dense = cv2.boxFilter(lost.astype(np.float32), -1, (k, k), normalize=False)
    y, x = np.unravel_index(int(np.argmax(dense)), dense.shape)
    half = k // 2
    box = (
        max(0, int(x) - half),
        max(0, int(y) - half),
        min(gw, int(x) + half + 1),
        min(gh, int(y) + half + 1),
    )
    return float(dense.max()) / (k * k), sigma, box


def _cached(view: VerifyView, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """``view``'s cached value for ``key``, made (and stored, arrays read-only) on first use."""
    value = view._derived.get(key)
    if value is None:
        value = make()
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
        value = view._derived.setdefault(key, value)
    return value


def _stack(view: VerifyView) -> U8:
    """Grey and CIE a*, b* as one 3-channel image (cv2.merge: np.dstack is ~6x slower)."""
    return np.asarray(cv2.merge([view.gray, view.chroma]), dtype=np.uint8)


def _chroma_p99(img: F32, valid: npt.NDArray[np.bool_]) -> float:
    """99th percentile of the CIE a* and b* distances from grey (128) over the valid cells.

    The two planes are split first and their valid cells pooled: a percentile depends only on
    the values, and masking the strided (h, w, 2) view was most of the cost.
    """
    _, a, b = cv2.split(img)
    return float(np.percentile(np.abs(np.concatenate([a[valid], b[valid]]) - 128.0), 99))


def _ref_gradient(ref_b: F32, channels: int) -> F32:
    """The reference's gradient, grey and (weighted) chroma channels, the larger per cell."""
    grad = np.zeros(ref_b.shape[:2], np.float32)
    for c in range(channels):
        weight = 1.0 if c == 0 else CHROMA_EDGE_WEIGHT
        grad = np.maximum(grad, weight * _grad(ref_b[:, :, c]))
    return grad


def _compare(query: VerifyView, reference: VerifyView, align: _Alignment) -> _Comparison:
    rh, rw = reference.shape
    f = GRID / max(rh, rw)
    gw, gh = max(8, round(rw * f)), max(8, round(rh * f))
    # the reference on the grid depends on nothing but the reference: made once per view
    ref_grid = np.asarray(
        _cached(
            reference,
            ("grid", gw, gh),
            lambda: np.asarray(
                cv2.resize(_stack(reference), (gw, gh), interpolation=cv2.INTER_AREA),
                dtype=np.uint8,
            ),
        ),
        dtype=np.float32,
    )
    a = align.matrix
    scale = math.sqrt(abs(float(np.linalg.det(a[:, :2]))))  # query px per reference px
    # query pixels per grid cell; shrink the query first so the warp does not alias
    per_cell = scale / f
    g = min(1.0, 1.0 / per_cell) if per_cell > 0 else 1.0
    q_img = _stack(query)
    if g < 0.95:
        qh, qw = query.shape
        q_img = np.asarray(
            cv2.resize(
                q_img, (max(1, round(qw * g)), max(1, round(qh * g))), interpolation=cv2.INTER_AREA
            ),
            dtype=np.uint8,
        )
    g_x = q_img.shape[1] / query.shape[1]
    g_y = q_img.shape[0] / query.shape[0]
    to_grid = np.array([[1.0 / f, 0.0, 0.0], [0.0, 1.0 / f, 0.0], [0.0, 0.0, 1.0]])
    ref_to_q = np.vstack([a, [0.0, 0.0, 1.0]])
    grid_to_q = ref_to_q @ to_grid
    grid_to_small = np.diag([g_x, g_y, 1.0]) @ grid_to_q
    warped = np.asarray(
        cv2.warpAffine(
            q_img.astype(np.float32),
            grid_to_small[:2],
            (gw, gh),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,  # never blend the frame's edge with a fill colour
        ),
        dtype=np.float32,
    )
    inside = cv2.warpAffine(
        np.ones(q_img.shape[:2], np.uint8),
        grid_to_small[:2],
        (gw, gh),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    coverage = float(inside.mean())
    valid = cv2.erode(inside, np.ones((5, 5), np.uint8)).astype(bool)
    n_valid = int(valid.sum())
    features: dict[str, float] = dict.fromkeys(FEATURES, 0.0)
    features["coverage"] = coverage
    if n_valid < 0.05 * gw * gh:
        return _Comparison(features, [], grid_to_q[:2], coverage)

    # at the grid's own resolution, what follows from the reference alone is cached on its view
    at_grid = per_cell >= 0.9
    if not at_grid:
        # the query is coarser than the grid: compare at the query's resolution, not the grid's
        lw, lh = max(4, round(gw * per_cell)), max(4, round(gh * per_cell))
        low = cv2.resize(ref_grid, (lw, lh), interpolation=cv2.INTER_AREA)
        ref_grid = np.asarray(cv2.resize(low, (gw, gh), interpolation=cv2.INTER_LINEAR), np.float32)
    ref_b = np.asarray(cv2.GaussianBlur(ref_grid, (3, 3), 0), dtype=np.float32)
    q_b = np.asarray(cv2.GaussianBlur(warped, (3, 3), 0), dtype=np.float32)
    # colour is compared only if the query has colour (a greyed copy is still a copy)
    q_chroma = _chroma_p99(q_b, valid)

    def ref_chroma() -> float:
        return _chroma_p99(ref_b, valid)

    if at_grid and bool(valid.all()):
        r_chroma = float(_cached(reference, ("chroma_p99_all_valid", gw, gh), ref_chroma))
    else:
        r_chroma = ref_chroma()
    use_chroma = not (r_chroma > 8.0 and q_chroma < 0.3 * r_chroma)
    channels = 3 if use_chroma else 1
    band = np.ones((BAND, BAND), np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    excess = np.zeros((gh, gw), np.float32)
    if at_grid:
        grad_r = _cached(
            reference, ("grad", gw, gh, channels), lambda: _ref_gradient(ref_b, channels)
        )
    else:
        grad_r = _ref_gradient(ref_b, channels)
    grad_q = np.zeros((gh, gw), np.float32)
    residual = 0.0
    mapped: list[tuple[F32, F32]] = []
    for c in range(channels):
        rc, qc = ref_b[:, :, c], q_b[:, :, c]
        lut, res = _tone_map(rc, qc, valid)
        residual = max(residual, res)
        pred = lut[np.clip(rc, 0, 255).astype(np.uint8)].astype(np.float32)
        mapped.append((pred, qc))
        level = DIFF_LEVEL if c == 0 else CHROMA_LEVEL
        # symmetric: the query outside the reference's local range (something added) or the
        # reference outside the query's (something thin removed, e.g. a line-art mark)
        ex_added = np.maximum(qc - cv2.dilate(pred, band), cv2.erode(pred, band) - qc)
        ex_removed = np.maximum(pred - cv2.dilate(qc, band), cv2.erode(qc, band) - pred)
        ex = np.maximum(np.maximum(ex_added, ex_removed), 0.0) * (DIFF_LEVEL / level)
        excess = np.maximum(excess, ex)
        weight = 1.0 if c == 0 else CHROMA_EDGE_WEIGHT
        g_qc = _grad(qc)
        if c == 0:
            grad_q0 = g_qc  # the query's grey gradient, for the blur matching below
        grad_q = np.maximum(grad_q, weight * g_qc)
    diff = (excess > DIFF_LEVEL) & valid
    gp = grad_r
    gq = grad_q
    ref_edges = (grad_r > EDGE_LEVEL) & valid
    q_edges = (grad_q > EDGE_LEVEL) & valid
    near_ref_edges = cv2.dilate(ref_edges.astype(np.uint8), kernel).astype(bool)
    near_q_edges = cv2.dilate(q_edges.astype(np.uint8), kernel).astype(bool)
    diff_near = cv2.dilate(diff.astype(np.uint8), kernel).astype(bool)
    # a reference edge is missing where the query's pixels leave the reference's range there
    missing = ref_edges & diff_near
    # "removed": missing reference structure with no query edge in its place
    removed = missing & ~near_q_edges
    added = q_edges & ~near_ref_edges & diff_near

    n_ref_edges = max(1, int(ref_edges.sum()))
    features["diff_fraction"] = float(diff.sum()) / n_valid
    features["ref_edges_reproduced"] = 1.0 - float(missing.sum()) / n_ref_edges
    features["added_edge_ratio"] = float(added.sum()) / n_ref_edges
    features["removed_mass"] = float(removed.sum()) / n_ref_edges
    # overlays add far more new structure than they hide; a swapped mark adds about what it hides
    features["log_added_vs_missing"] = math.log((added.sum() + 1.0) / (missing.sum() + 1.0))
    features["tone_change"] = residual

    # paint laid across the photo (captions): the reference under it is hidden, not changed
    strong = _strong_colour(ref_b, valid)
    painted = _painted_over(diff, strong, added, ref_edges)
    features["colour_lost"] = _colour_lost(ref_b, q_b, valid, strong, painted)
    features["missing_under_paint"] = float((missing & painted).sum()) / max(1, int(missing.sum()))
    flattened, blur, flat_box = _flattened(mapped, grad_q0, valid, painted, ref_edges & ~missing)
    features["flattened"] = flattened
    features["query_blur"] = blur

    # worst windows of missing reference structure, at two scales (logo-sized and larger)
    edge_f = ref_edges.astype(np.float32)
    miss_f = missing.astype(np.float32)
    min_edges = 0.01 * n_ref_edges + 4.0
    for name, frac in (("worst_missing_small", 0.12), ("worst_missing_large", 0.25)):
        k = max(5, round(frac * max(gw, gh)) | 1)
        e_sum = cv2.boxFilter(edge_f, -1, (k, k), normalize=False)
        m_sum = cv2.boxFilter(miss_f, -1, (k, k), normalize=False)
        ok = e_sum >= max(min_edges, 0.02 * k * k)
        if ok.any():
            ratio = np.where(ok, m_sum / np.maximum(e_sum, 1.0), 0.0)
            features[name] = float(ratio.max())
            if name == "worst_missing_small":
                features["worst_missing_mass"] = float(m_sum[ok].max()) / n_ref_edges

    # differing regions
    closed = cv2.morphologyEx(diff.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    regions: list[_Region] = []
    min_cells = MIN_REGION * n_valid
    if reference.content is not None:
        cx0, cy0, cx1, cy1 = reference.content
        content_share = (cx1 - cx0) * (cy1 - cy0) / (rh * rw)
        min_cells = max(MIN_REGION_CELLS, min_cells * content_share)
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        area_frac = area / n_valid
        if area < min_cells:
            continue
        box = (max(0, x - 2), max(0, y - 2), min(gw, x + w + 2), min(gh, y + h + 2))
        sl = (slice(box[1], box[3]), slice(box[0], box[2]))
        e = float(ref_edges[sl].sum())
        m = float(missing[sl].sum())
        ad = float(added[sl].sum())
        rem = float(removed[sl].sum())
        comp = labels[sl] == i
        energy_ratio = float(gq[sl][comp].sum() + 1.0) / float(gp[sl][comp].sum() + 1.0)
        added_vs_missing = math.log((ad + 1.0) / (m + 1.0))
        missing_frac = m / e if e >= 4 else 0.0
        added_rel = ad / max(e, 4.0)
        # display labels (the decision is the model's): added on top vs replaced/removed
        if added_vs_missing > math.log(2.0) and (added_rel > 0.3 or energy_ratio > 1.2):
            label = "overlay"
        elif missing_frac > 0.6 and rem > 0.5 * m:
            label = "removed"
        elif missing_frac > 0.6:
            label = "replaced"
        elif added_rel > 0.5 or energy_ratio > 1.2:
            label = "overlay"
        else:
            label = "changed"
        regions.append(
            _Region(
                box,
                area_frac,
                missing_frac,
                added_rel,
                energy_ratio,
                area / (w * h),
                label,
                added_vs_missing,
            )
        )
    regions.sort(key=lambda r: -r.area)
    features["n_regions"] = math.log1p(len(regions))
    if regions:
        big = regions[0]
        x0, y0, x1, y1 = big.box
        features["largest_area"] = big.area
        features["largest_missing"] = big.missing
        features["largest_added"] = min(big.added, 10.0)
        features["largest_added_vs_missing"] = big.added_vs_missing
        features["largest_energy_ratio"] = math.log(big.energy_ratio)
        features["largest_fill"] = big.fill
        bw, bh = (x1 - x0) / gw, (y1 - y0) / gh
        features["largest_aspect"] = math.log(max(bw, 1e-3) / max(bh, 1e-3))
        features["largest_extent"] = max(bw, bh)
        if len(regions) >= 3:
            cx = np.array([(r.box[0] + r.box[2]) / (2 * gw) for r in regions])
            cy = np.array([(r.box[1] + r.box[3]) / (2 * gh) for r in regions])
            features["regions_spread"] = float(np.std(cx) + np.std(cy))
        if len(regions) >= 6 and features["regions_spread"] > 0.35:
            regions = [_relabel(r, "watermark") if r.label != "removed" else r for r in regions]
    if flattened > FLATTENED_VETO:
        # shown to the reviewer; added after the features, which describe the differing pixels
        x0, y0, x1, y1 = flat_box
        regions.append(
            _Region(flat_box, (x1 - x0) * (y1 - y0) / n_valid, flattened, 0.0, 0.0, 1.0, "removed")
        )
    return _Comparison(features, regions, grid_to_q[:2], coverage)


def _relabel(region: _Region, label: str) -> _Region:
    return dataclasses.replace(region, label=label)


# --- decision -----------------------------------------------------------------------------------


class _Model:
    """Gradient-boosted regression trees on log-odds, read from plain JSON."""

    def __init__(self, payload: dict[str, Any]) -> None:
        if payload.get("version") != MODEL_VERSION:
            raise ValueError(
                f"verifier model version {payload.get('version')} != supported {MODEL_VERSION}"
            )
        if tuple(payload["features"]) != FEATURES:
            raise ValueError("verifier model was trained on other features; retrain it")
        self.init = float(payload["init"])
        self.learning_rate = float(payload["learning_rate"])
        self.threshold = float(payload["threshold"])
        #: the acceptance threshold for pairs in the paint regime (see :meth:`threshold_for`);
        #: models without one use ``threshold`` throughout
        self.paint_threshold = float(payload.get("paint_threshold", self.threshold))
        self.trees = [
            (
                np.asarray(t["feature"], dtype=np.int64),
                np.asarray(t["threshold"], dtype=np.float64),
                np.asarray(t["left"], dtype=np.int64),
                np.asarray(t["right"], dtype=np.int64),
                np.asarray(t["value"], dtype=np.float64),
            )
            for t in payload["trees"]
        ]

    def threshold_for(self, features: dict[str, float]) -> float:
        """The acceptance threshold for a pair with these measurements.

        Where nearly all the reference structure the query lacks lies under paint laid across
        the photo (``missing_under_paint`` >= :data:`PAINT_REGIME`: a caption or banner over the
        mark), copies and look-alikes score differently from elsewhere, so that regime has its
        own threshold, chosen in training like the other: to reject 99.7 % of the training hard
        negatives of the regime out of fold.
        """
        if features.get("missing_under_paint", 0.0) >= PAINT_REGIME:
            return self.paint_threshold
        return self.threshold

    def score(self, x: F64) -> float:
        total = self.init
        for feat, thr, left, right, value in self.trees:
            node = 0
            while left[node] >= 0:
                node = int(left[node]) if x[feat[node]] <= thr[node] else int(right[node])
            total += self.learning_rate * float(value[node])
        if total < -30.0:  # exp() overflows far below this; the probability is 0 anyway
            return 0.0
        return 1.0 / (1.0 + math.exp(-total))


_MODEL: _Model | None = None
_MODEL_LOCK = threading.Lock()


def _model() -> _Model:
    global _MODEL
    if _MODEL is None:
        with _MODEL_LOCK:
            if _MODEL is None:
                text = resources.files("detector.data").joinpath(MODEL_FILE).read_text()
                _MODEL = _Model(json.loads(text))
    return _MODEL


def veto(features: dict[str, float]) -> str | None:
    """The rule that rejects a pair whatever the model says, if one applies: ``"colour_lost"``
    (the reference's coloured mark lost its colour, :func:`_colour_lost`) or ``"flattened"`` (a
    mark-sized patch of its structure flattened, :func:`_flattened`)."""
    if features.get("colour_lost", 0.0) > COLOUR_LOST_VETO:
        return "colour_lost"
    if features.get("flattened", 0.0) > FLATTENED_VETO:
        return "flattened"
    return None


def feature_vector(features: dict[str, float]) -> F64:
    """The model's input, in :data:`FEATURES` order."""
    return np.array([features.get(name, 0.0) for name in FEATURES], dtype=np.float64)


def measure(query: VerifyView, reference: VerifyView) -> tuple[dict[str, float], Any]:
    """Align and compare: the features (empty if no alignment) and internal details.

    Used by training to build feature vectors exactly as :func:`verify` does.
    """
    cv2.setNumThreads(1)
    align = _align(query, reference)
    if align is None or align.inliers < MIN_INLIERS:
        return {}, align
    scale = math.sqrt(abs(float(np.linalg.det(align.matrix[:, :2]))))
    if not MIN_SCALE <= scale <= MAX_SCALE:
        return {}, align
    comparison = _compare(query, reference, align)
    feats = comparison.features
    feats["log_inliers"] = math.log1p(align.inliers)
    feats["inlier_ratio"] = align.inliers / max(1, align.matches)
    return feats, (align, comparison)


def _describe_transform(align: _Alignment, query: VerifyView, reference: VerifyView) -> str:
    a = align.matrix[:, :2]
    scale = math.sqrt(abs(float(np.linalg.det(a))))
    if align.mirrored:
        a = a @ np.diag([-1.0, 1.0])
    angle = -math.degrees(math.atan2(float(a[1, 0]), float(a[0, 0])))
    parts = []
    if align.mirrored:
        parts.append("mirror")
    if abs(angle) >= 0.5:
        parts.append(f"rotate {angle:.0f}°")
    head = "+".join(parts) if parts else "upright"
    # scale in original pixels: query px per reference px
    qk = query.width / query.shape[1]
    rk = reference.width / reference.shape[1]
    return f"{head}, scale {scale * qk / rk:.2f}"


def _query_box(
    box: tuple[int, int, int, int], grid_to_q: F64, query: VerifyView
) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x0, y1, 1.0], [x1, y1, 1.0]])
    pts = corners @ grid_to_q.T
    qh, qw = query.shape
    xs = np.clip(pts[:, 0] / qw, 0.0, 1.0)
    ys = np.clip(pts[:, 1] / qh, 0.0, 1.0)
    return (
        round(float(xs.min()), 4),
        round(float(ys.min()), 4),
        round(float(xs.max()), 4),
        round(float(ys.max()), 4),
    )


_LABEL_WORDS = {
    "overlay": "overlaid text or graphics",
    "watermark": "a tiled watermark",
    "replaced": "a different mark",
    "removed": "the reference's content removed",
    "changed": "changed content",
}


def verify(query: VerifyView, reference: VerifyView) -> Verification:
    """Decide whether ``query`` is a (transformed) copy of ``reference``, with the evidence."""
    feats, detail = measure(query, reference)
    if not feats:
        inliers = 0 if detail is None else int(detail.inliers)
        return Verification(
            accepted=False,
            score=0.0,
            reason=(
                f"could not align the query with the reference ({inliers} consistent keypoint "
                f"matches, at least {MIN_INLIERS} needed)"
            ),
            inliers=inliers,
            coverage=0.0,
            transform="none",
            differing_regions=[],
            features={},
        )
    align, comparison = detail
    model = _model()
    score = model.score(feature_vector(feats))
    accepted = score >= model.threshold_for(feats)
    colour_lost = feats.get("colour_lost", 0.0)
    flattened = feats.get("flattened", 0.0)
    vetoed_by = veto(feats) if accepted else None
    accepted = accepted and vetoed_by is None
    transform = _describe_transform(align, query, reference)
    if comparison.coverage < 0.97:
        transform += ", crop"
    qh, qw = query.shape
    rh, rw = reference.shape
    ref_area_in_q = abs(float(np.linalg.det(align.matrix[:, :2]))) * rh * rw * comparison.coverage
    if ref_area_in_q < 0.85 * qh * qw:
        transform += f", inset ({100 * ref_area_in_q / (qh * qw):.0f}% of the query)"
    regions = [
        (*_query_box(r.box, comparison.grid_to_query, query), r.label) for r in comparison.regions
    ]
    head = (
        f"aligned with {align.inliers} inliers; {100 * comparison.coverage:.0f}% of the "
        "reference visible"
    )
    if not comparison.regions:
        detail_text = "no region differs"
    else:
        big = comparison.regions[0]
        labels = sorted({r.label for r in comparison.regions})
        words = ", ".join(_LABEL_WORDS[lb] for lb in labels)
        detail_text = (
            f"the largest differing region ({100 * big.area:.1f}% of the reference) shows "
            f"{_LABEL_WORDS[big.label]}, {100 * big.missing:.0f}% of the reference's structure "
            f"there missing; differences: {words}"
        )
    verdict = "same photo" if accepted else "not the same photo"
    reason = f"{verdict} (score {score:.2f}): {head}; {detail_text}"
    if vetoed_by == "colour_lost":
        reason += (
            f"; but the reference's coloured mark is gone: {100 * colour_lost:.0f}% of its "
            "strongly coloured area shows no colour in the query"
        )
    if flattened > FLATTENED_VETO:
        reason += (
            f"; {'but ' if vetoed_by == 'flattened' else ''}a mark-sized patch of the reference "
            f"is gone: {100 * flattened:.0f}% of it shows structure (faint included) that the "
            "query has flattened"
        )
    return Verification(
        accepted=accepted,
        score=round(score, 4),
        reason=reason,
        inliers=align.inliers,
        coverage=round(comparison.coverage, 4),
        transform=transform,
        differing_regions=regions,
        features={k: round(v, 5) for k, v in feats.items()},
    )

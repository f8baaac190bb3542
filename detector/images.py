"""Decode, normalise and hash images: one path for brand references and listing images alike.

The path: open with an allow-list of formats, refuse oversized or bomb-like images before any
pixel is decoded, decode (JPEG at reduced scale through Pillow's draft mode, since a 64-bit DCT
hash needs only ~32x32 pixels), apply EXIF orientation, flatten transparency onto white, convert to
grayscale, trim uniform borders, measure quality, then hash.

Hashes are 64-bit DCT perceptual hashes (the pHash construction) returned as Python ints in
``[0, 2**64)``. References get several variant hashes (mirror, crops, small rotations) so that a
single query hash finds a reference whatever a counterfeiter did to the photo.
"""

from __future__ import annotations

import io
import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

ALGORITHM = "dct64"
ALGORITHM_VERSION = 3
#: Earlier versions whose stored hashes today's queries still compare with. Version 2 is
#: version 3 without the caption-suppressed views (:data:`CLEAN`): its references stay
#: searchable, without that robustness, until ``fakeguard catalog rehash`` brings them up to date.
COMPATIBLE_VERSIONS: tuple[int, ...] = (2,)

#: Formats we decode. Anything else (PSD, EPS, which would run Ghostscript, ICO, ...) is refused.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

#: Side of the grayscale working image the hashes are computed from.
WORK_SIDE = 256
#: Smallest side JPEG draft decoding may go down to (1/8 scale for a 1000x1000 JPEG).
DRAFT_MIN_SIDE = 96

#: Most PNG chunks, JPEG segments before the first scan, or GIF blocks before the first frame a
#: file may have. Pillow walks these one by one in Python: a 12 MB PNG of a million empty chunks
#: took 4 s to open. Real images have a few dozen (an APNG two per frame).
MAX_BLOCKS = 20_000
#: Longer side above which an image is first reduced by a whole factor (box filter), before
#: orientation and mode normalisation, each of which copies the full image: a 49 M-pixel RGBA
#: PNG (200 KB on disk) peaked at 750 MB and 3.4 s without it.
REDUCE_ABOVE_SIDE = 2048

GrayArray = npt.NDArray[np.float32]


class ImageRejected(Exception):
    """An image we will not hash, with a machine-readable ``code`` and a human reason.

    Codes: ``not_an_image``, ``unsupported_format``, ``truncated``, ``too_many_pixels``,
    ``too_complex``, ``too_small``, ``too_flat``.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class ImageLimits:
    """Caps applied before decoding. ``max_pixels`` guards against decompression bombs."""

    max_pixels: int = 50_000_000
    min_side: int = 16
    min_quality: float = 5.0


@dataclass(frozen=True)
class DecodedImage:
    """A decoded, normalised grayscale image ready for hashing.

    Attributes
    ----------
    gray : ndarray of float32, shape (h, w)
        Normalised grayscale pixels in [0, 255], borders trimmed, longest side <= ``WORK_SIDE``.
    full : ndarray of float32 or None
        The same before trimming (None when nothing was trimmed).
    width, height : int
        Size of the original image as stored in the file (before EXIF orientation).
    format : str
        Pillow format name, e.g. ``"JPEG"``.
    quality : float
        0-100: how much structure the image has; flat images score near 0.
    trimmed : tuple of float
        Fractions trimmed from (left, top, right, bottom) as uniform border.
    """

    gray: GrayArray
    width: int
    height: int
    format: str
    quality: float
    trimmed: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    full: GrayArray | None = None

    @property
    def frame(self) -> GrayArray:
        """The whole image before border trimming (overlays often reach into the margins)."""
        return self.gray if self.full is None else self.full


@dataclass(frozen=True)
class HashVariant:
    """One hash of one variant of an image (``variant`` says which: ``orig``, ``mirror``, ...)."""

    variant: str
    value: int


@dataclass(frozen=True)
class ImageHashes:
    """Everything computed for one image: the normalised result and its hashes."""

    image: DecodedImage
    hashes: list[HashVariant] = field(default_factory=list)

    @property
    def primary(self) -> int:
        return self.hashes[0].value


def _bomb(exc: Exception, limits: ImageLimits) -> ImageRejected:
    """Pillow's own bomb guard fired (far above our limit): say so in our terms."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    return ImageRejected(
        "too_many_pixels",
        f"image dimensions give {size}; the limit is {limits.max_pixels:,} "
        "(possible decompression bomb)",
    )


def _count_blocks(data: bytes) -> tuple[str, int]:
    """Count the blocks Pillow would walk in Python, stopping once past :data:`MAX_BLOCKS`."""
    n, end = 0, len(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        pos = 8
        while pos + 8 <= end and n <= MAX_BLOCKS:
            (length,) = struct.unpack_from(">I", data, pos)
            n += 1
            if data[pos + 4 : pos + 8] == b"IEND":
                break
            pos += 12 + length
        return "PNG chunks", n
    if data.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 4 <= end and n <= MAX_BLOCKS and data[pos] == 0xFF:
            marker = data[pos + 1]
            n += 1
            if marker == 0xFF:  # fill byte
                pos += 1
            elif marker in (0xDA, 0xD9):  # start of scan, end of image: Pillow stops here
                break
            elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length field
                pos += 2
            else:
                pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
        return "JPEG segments", n
    if data[:6] in (b"GIF87a", b"GIF89a") and end >= 13:
        flags = data[10]
        pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
        while pos < end and n <= MAX_BLOCKS and data[pos] == 0x21:  # extension blocks
            pos += 2
            while pos < end and n <= MAX_BLOCKS:  # its sub-blocks, up to the empty one
                size = data[pos]
                n += 1
                pos += 1 + size
                if size == 0:
                    break
        return "GIF blocks", n
    return "", 0


def open_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """Open ``data`` lazily and check format and size before any pixel is decoded."""
    if not data:
        raise ImageRejected("not_an_image", "the file is empty")
    kind, blocks = _count_blocks(data)
    if blocks > MAX_BLOCKS:
        raise ImageRejected(
            "too_complex",
            f"the file has more than {MAX_BLOCKS:,} {kind} before its image data; real images "
            "have a few dozen",
        )
    try:
        img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except Image.DecompressionBombError as exc:
        raise _bomb(exc, limits) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            "not_an_image",
            "the file is not an image in a supported format (" + ", ".join(ALLOWED_FORMATS) + ")",
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected("not_an_image", f"the image header cannot be read: {exc}") from exc
    width, height = img.size
    if width * height > limits.max_pixels:
        raise ImageRejected(
            "too_many_pixels",
            f"image is {width}x{height} = {width * height:,} pixels; the limit is "
            f"{limits.max_pixels:,}",
        )
    if min(width, height) < limits.min_side:
        raise ImageRejected(
            "too_small",
            f"image is {width}x{height}; both sides must be at least {limits.min_side} pixels",
        )
    return img


def flatten(img: Image.Image) -> Image.Image:
    """Transparency onto white; 16/32-bit and float images scaled to 8 bits by their range.

    The one normalisation of pixel modes shared by hashing and verification.
    """
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        img = background
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(scaled.astype(np.uint8), mode="L")
    return img


_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def orientation(img: Image.Image) -> Image.Transpose | None:
    """The transpose that EXIF orientation asks for (None when upright or unreadable)."""
    try:
        value = img.getexif().get(0x0112)
    except Exception:  # a malformed EXIF block is no reason to refuse the pixels
        return None
    return _ORIENTATIONS.get(value) if isinstance(value, int) else None


def reduce_large(img: Image.Image, side: int = REDUCE_ABOVE_SIDE) -> Image.Image:
    """Reduce an image whose longer side exceeds ``side`` by a whole factor (box filter)."""
    factor = max(img.size) // side
    if factor < 2:
        return img
    width, height = img.size
    if img.mode in ("P", "1") or img.mode.startswith("I;16"):
        # Image.reduce does not take these modes; resize does (nearest for palettes).
        return img.resize((max(1, width // factor), max(1, height // factor)), Image.Resampling.BOX)
    # In stripes: reducing RGBA makes a premultiplied copy first, and a whole-image copy of a
    # 50 M-pixel image is 200 MB.
    out = Image.new(img.mode, (-(-width // factor), -(-height // factor)))
    step = factor * 128
    for y in range(0, height, step):
        stripe = img.crop((0, y, width, min(height, y + step))).reduce(factor)
        out.paste(stripe, (0, y // factor))
    out.info = dict(img.info)
    return out


def _to_gray(img: Image.Image) -> Image.Image:
    """Flatten transparency onto white and convert to 8-bit grayscale."""
    return flatten(img).convert("L")


def decode(data: bytes, limits: ImageLimits | None = None, *, draft: bool = True) -> DecodedImage:
    """Decode and normalise image bytes, or raise :class:`ImageRejected` with a clear reason.

    ``draft=True`` lets JPEGs decode at 1/2 .. 1/8 scale (never below ``DRAFT_MIN_SIDE``).
    """
    limits = limits or ImageLimits()
    img = open_image(data, limits)
    fmt = img.format or "unknown"
    width, height = img.size
    try:
        if draft and fmt == "JPEG":
            img.draft("L", (DRAFT_MIN_SIDE, DRAFT_MIN_SIDE))
        img.load()
        # Orientation is applied by hand (not ImageOps.exif_transpose, which also rewrites the
        # EXIF block: 0.8 s for an 8 MB one) and after the reduction, on few pixels.
        transpose = orientation(img)
        img = reduce_large(img)
        if transpose is not None:
            img = img.transpose(transpose)
        gray_img = _to_gray(img)
        if max(gray_img.size) > WORK_SIDE:
            gray_img.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    except Image.DecompressionBombError as exc:
        raise _bomb(exc, limits) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        msg = str(exc)
        code = "truncated" if "truncated" in msg or "end of file" in msg.lower() else "not_an_image"
        raise ImageRejected(code, f"the image data cannot be decoded: {msg}") from exc
    arr = np.asarray(gray_img, dtype=np.float32)
    full = arr
    arr, trimmed = trim_uniform_border(arr)
    quality = image_quality(arr)
    if quality < limits.min_quality:
        raise ImageRejected(
            "too_flat",
            f"image quality {quality:.1f}/100 is below {limits.min_quality:.0f}: the image is too "
            "uniform (blank, single colour or nearly so) to identify",
        )
    return DecodedImage(
        gray=arr,
        width=width,
        height=height,
        format=fmt,
        quality=quality,
        trimmed=trimmed,
        full=None if arr is full else full,
    )


def _median(values: npt.NDArray[np.floating[Any]]) -> float:
    """``np.median(values)`` of a 1-D array without NaN (pixels, DCT coefficients).

    np.median partitions a second time to look for NaN at the end and goes through ``mean``:
    several times the cost of the partition on these small arrays. The k-th smallest values
    are the same whatever the partition, and the mean of two of them is their sum halved in
    the array's dtype, as here.
    """
    n = values.shape[0]
    half = n // 2
    if n % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return float((part[half - 1 : half] + part[half : half + 1])[0] / 2)


def _median_rows(values: GrayArray) -> GrayArray:
    """``np.median(values, axis=1, keepdims=True)`` of a 2-D float32 array without NaN."""
    n = values.shape[1]
    half = n // 2
    if n % 2:
        return np.partition(values, half, axis=1)[:, half : half + 1]
    part = np.partition(values, (half - 1, half), axis=1)
    middle = part[:, half - 1 : half] + part[:, half : half + 1]
    middle /= 2
    return middle


def _main_run(profile: npt.NDArray[np.float64], on: float, gap: int) -> tuple[int, int] | None:
    """The contiguous run (gaps up to ``gap`` bridged) of ``profile > on`` with the most mass."""
    idx = np.flatnonzero(profile > on)
    if idx.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(idx) > gap + 1)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]])) + 1
    cums = np.concatenate(([0.0], np.cumsum(profile)))
    masses = cums[ends] - cums[starts]
    best = int(np.argmax(masses))
    return int(starts[best]), int(ends[best])


def content_box(
    gray: GrayArray, tolerance: float = 12.0, min_keep: float = 0.2
) -> tuple[int, int, int, int] | None:
    """Box (left, top, right, bottom) of the main content against a uniform background.

    Content is what differs from the border colour (median of the outermost ring) by more than
    ``tolerance``. Rows and columns are kept as the heaviest contiguous run of content (gaps of
    up to 3 % bridged), so a shop name or a status bar separated from the product by background
    is not part of the box. None when there is nothing to trim.
    """
    h, w = gray.shape
    ring = np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]])
    border = _median(ring)
    differs = np.abs(gray - border) > tolerance
    rows = _main_run(differs.mean(axis=1), 0.004, max(1, round(0.03 * h)))
    if rows is None:
        return None
    top, bottom = rows
    cols = _main_run(differs[top:bottom].mean(axis=0), 0.004, max(1, round(0.03 * w)))
    if cols is None:
        return None
    left, right = cols
    if (bottom - top) < min_keep * h or (right - left) < min_keep * w:
        return None
    if top == 0 and left == 0 and bottom == h and right == w:
        return None
    return left, top, right, bottom


def trim_uniform_border(
    gray: GrayArray, tolerance: float = 12.0, min_keep: float = 0.2, rounds: int = 3
) -> tuple[GrayArray, tuple[float, float, float, float]]:
    """Trim uniform borders, repeatedly (a frame around a white page around a product).

    Returns the trimmed array and the fractions trimmed from (left, top, right, bottom) of the
    input.
    """
    h, w = gray.shape
    x0, y0, x1, y1 = 0, 0, w, h
    for _ in range(rounds):
        box = content_box(gray[y0:y1, x0:x1], tolerance, min_keep)
        if box is None:
            break
        left, top, right, bottom = box
        # Step past the anti-aliased edge of a frame, so the next round sees a clean ring.
        ix, iy = max(1, round(0.015 * (right - left))), max(1, round(0.015 * (bottom - top)))
        left, top = left + (ix if left > 0 else 0), top + (iy if top > 0 else 0)
        right = right - (ix if right < x1 - x0 else 0)
        bottom = bottom - (iy if bottom < y1 - y0 else 0)
        x0, y0, x1, y1 = x0 + left, y0 + top, x0 + right, y0 + bottom
        if (x1 - x0) < min_keep * w or (y1 - y0) < min_keep * h:
            break
    if (x0, y0, x1, y1) == (0, 0, w, h):
        return gray, (0.0, 0.0, 0.0, 0.0)
    return gray[y0:y1, x0:x1], (x0 / w, y0 / h, (w - x1) / w, (h - y1) / h)


def image_quality(gray: GrayArray) -> float:
    """0-100 score of how much structure an image has (in the spirit of PDQ's quality metric).

    Mean absolute gradient on a 64x64 downsample, scaled so that a typical photo or a logo on a
    plain background scores well above 20 and a blank or near-uniform image scores below 5.
    """
    small = _resize(gray, 64, 64)
    gx = np.abs(np.diff(small, axis=1)).mean()
    gy = np.abs(np.diff(small, axis=0)).mean()
    return float(min(100.0, (gx + gy) * 10.0))


def _resize(gray: GrayArray, width: int, height: int) -> GrayArray:
    # What Image.fromarray(mode="F") and np.asarray do, without their per-call overhead
    # (most of the cost on arrays this small).
    src = np.ascontiguousarray(gray, dtype=np.float32)
    img = Image.frombuffer("F", (src.shape[1], src.shape[0]), src, "raw", "F;32F", 0, 1)
    out = img.resize((width, height), Image.Resampling.BOX)
    return np.frombuffer(out.tobytes(), dtype=np.float32).reshape(height, width)


_DCT_CACHE: dict[int, npt.NDArray[np.float64]] = {}


def _dct_matrix(n: int = 32, keep: int = 8) -> npt.NDArray[np.float64]:
    """Rows 0..keep-1 of the orthonormal DCT-II matrix of size n (cached)."""
    mat = _DCT_CACHE.get(n)
    if mat is None:
        k = np.arange(keep)[:, None]
        i = np.arange(n)[None, :]
        mat = np.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
        mat[0, :] /= math.sqrt(2.0)
        _DCT_CACHE[n] = mat
    return mat


def _pack_bits(bits: npt.NDArray[np.bool_]) -> int:
    """The bits, first one most significant, as an int."""
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big") >> (-bits.size % 8)


def dct_hash(gray: GrayArray) -> int:
    """64-bit DCT perceptual hash: 32x32 box downsample, 2-D DCT, 8x8 low band vs its median."""
    return _dct_bits(_resize(gray, 32, 32).astype(np.float64)[None])[0]


def _dct_bits(smalls: npt.NDArray[np.float64]) -> list[int]:
    """The hash of each 32x32 downsample in a stack ``(n, 32, 32)``: the 8x8 low band of its
    2-D DCT against the band's median (the mean of its two middle values)."""
    d = _dct_matrix()
    low = (d @ smalls @ d.T).reshape(len(smalls), -1)
    half = low.shape[1] // 2
    part = np.partition(low, (half - 1, half), axis=1)
    median = (part[:, half - 1] + part[:, half]) / 2
    return [_pack_bits(row > m) for row, m in zip(low, median, strict=True)]


def _crop(gray: GrayArray, box: tuple[float, float, float, float]) -> GrayArray:
    """Crop by fractions (left, top, right, bottom) of the image size."""
    h, w = gray.shape
    left, t, r, b = box
    x0, y0 = round(left * w), round(t * h)
    x1, y1 = max(x0 + 8, round((1 - r) * w)), max(y0 + 8, round((1 - b) * h))
    return gray[y0:y1, x0:x1]


def _rotate(gray: GrayArray, degrees: float) -> GrayArray:
    img = Image.fromarray(gray, mode="F")
    rotated = img.rotate(degrees, resample=Image.Resampling.BILINEAR, expand=False, fillcolor=255.0)
    return np.asarray(rotated, dtype=np.float32)


def _crop_boxes() -> list[tuple[str, tuple[float, float, float, float]]]:
    """Sub-windows of a reference: centred, side- and corner-anchored crops at four scales."""
    boxes: list[tuple[str, tuple[float, float, float, float]]] = []
    for f in (0.05, 0.10, 0.15, 0.20):
        pct = round(f * 100)
        g = 2 * f
        boxes += [
            (f"crop{pct}", (f, f, f, f)),
            (f"crop{pct}-l", (g, f, 0.0, f)),
            (f"crop{pct}-r", (0.0, f, g, f)),
            (f"crop{pct}-t", (f, g, f, 0.0)),
            (f"crop{pct}-b", (f, 0.0, f, g)),
            (f"crop{pct}-tl", (g, g, 0.0, 0.0)),
            (f"crop{pct}-tr", (0.0, g, g, 0.0)),
            (f"crop{pct}-bl", (g, 0.0, 0.0, g)),
            (f"crop{pct}-br", (0.0, 0.0, g, g)),
        ]
    return boxes


REFERENCE_ROTATIONS: tuple[float, ...] = (-6.0, -3.0, 3.0, 6.0)


def reference_variants(image: DecodedImage) -> list[tuple[str, GrayArray]]:
    """The transformed views of a reference whose hashes are stored in the index.

    Crops and rotations are taken from the whole frame (that is what a counterfeiter edits);
    the border-trimmed image is one more view, so re-framed copies match too.
    """
    frame = image.frame
    views: list[tuple[str, GrayArray]] = [("orig", frame)]
    if image.full is not None:
        views.append(("trim", image.gray))
    for name, box in _crop_boxes():
        views.append((name, _crop(frame, box)))
    for deg in REFERENCE_ROTATIONS:
        views.append((f"rot{deg:+.0f}", _rotate(frame, deg)))
    return views


def hash_reference(image: DecodedImage) -> list[HashVariant]:
    """Hashes stored for a reference: every variant and its mirror image, the
    caption-suppressed frame (:func:`clean`), the strips (:func:`strip_hashes`), and their
    mirror images."""
    out: list[HashVariant] = []
    for name, view in reference_variants(image):
        out.append(HashVariant(name, dct_hash(view)))
        out.append(HashVariant(f"{name}+mirror", dct_hash(view[:, ::-1])))
    out.append(HashVariant(CLEAN, clean_hash(image.frame)))
    out.append(HashVariant(f"{CLEAN}+mirror", clean_hash(image.frame[:, ::-1])))
    out += strip_hashes(image.frame)
    out += [HashVariant(f"{h.variant}+mirror", h.value) for h in strip_hashes(image.frame[:, ::-1])]
    return _dedupe(out)


#: Strips of the frame hashed on their own: the third of the frame along each side (in this
#: order in :func:`strip_hashes`). A caption across the middle third leaves the top and bottom
#: strips whole, a banner along one side or a caption in a corner the opposite ones.
STRIPS: tuple[str, ...] = ("top", "bottom", "left", "right")
#: A strip is hashed only with this much structure (mean absolute gradient of its 32 x 32
#: downsample, x10): the plain margin of a product shot on white would match every other one.
STRIP_MIN_QUALITY = 30.0


def strip_hashes(frame: GrayArray) -> list[HashVariant]:
    """Hashes of the frame's :data:`STRIPS` that have enough structure to identify it.

    Each strip is brought to 32 x 32 cells and hashed as :func:`dct_hash` hashes its own
    32 x 32 downsample.
    """
    # one downsample to 96 x 96; each strip is then 32 x 96 (or 96 x 32) cells, averaged in
    # threes along its length to 32 x 32
    grid = _small(frame, 96, 96).astype(np.float64)
    across = (grid[:, 0::3] + grid[:, 1::3] + grid[:, 2::3]) / 3.0  # 96 x 32
    down = (grid[0::3] + grid[1::3] + grid[2::3]) / 3.0  # 32 x 96
    smalls = np.stack([across[:32], across[64:], down[:, :32], down[:, 64:]])
    quality = 10.0 * (
        np.abs(np.diff(smalls, axis=2)).mean(axis=(1, 2))
        + np.abs(np.diff(smalls, axis=1)).mean(axis=(1, 2))
    )
    return [
        HashVariant(name, value)
        for name, value, q in zip(STRIPS, _dct_bits(smalls), quality, strict=True)
        if q >= STRIP_MIN_QUALITY
    ]


def view_kind(variant: str) -> str:
    """The kind of view a variant name is: ``""`` for the whole-frame views (the original,
    crops, rotations, trimmed, bands), else :data:`CLEAN` or a strip's name. Views are only
    compared with stored variants of their own kind (a mirrored variant is of its base kind)."""
    base = variant.split("+", 1)[0]
    return base if base == CLEAN or base in STRIPS else ""


#: Variant name of the caption-suppressed view (query and reference alike).
CLEAN = "clean"
#: Side the frame is brought to before the morphological filter, and the filter's size there:
#: strokes of captions up to ~4 % of the side wide are removed.
CLEAN_SIDE = 128
CLEAN_KERNEL = 5


def _small(gray: GrayArray, width: int, height: int) -> GrayArray:
    """A cheap resize for the views added in version 3: OpenCV's area averaging when reducing
    by 2x or more (no aliasing; references), bilinear otherwise (close to it at such factors,
    and a quarter of its cost: the listing photo, decoded at 1/8 scale, is ~125 px)."""
    src = np.ascontiguousarray(gray, dtype=np.float32)
    reducing = src.shape[1] >= 2 * width or src.shape[0] >= 2 * height
    method = cv2.INTER_AREA if reducing else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(src, (width, height), interpolation=method), dtype=np.float32)


def clean_hash(gray: GrayArray) -> int:
    """:func:`dct_hash` of :func:`clean` (its 32 x 32 downsample taken with OpenCV)."""
    small = cv2.resize(clean(gray), (32, 32), interpolation=cv2.INTER_AREA)
    return _dct_bits(small.astype(np.float64)[None])[0]


def clean(gray: GrayArray) -> GrayArray:
    """The frame with thin strokes removed: a grey closing then opening at ``CLEAN_SIDE``.

    Text stamped over a photo (a shop name, "SALE", a price) is a few large, thin strokes;
    closing fills dark strokes from their surroundings, opening removes light ones. What is
    left is the photo's large-scale layout, which the 64-bit hash reads: a caption that moved
    the plain hash beyond the threshold moves this one far less. Thin parts of the photo go
    too, on the reference as on the query, so the two still compare.
    """
    h, w = gray.shape
    scale = CLEAN_SIDE / max(h, w)
    small = _small(gray, max(8, round(w * scale)), max(8, round(h * scale)))
    kernel = np.ones((CLEAN_KERNEL, CLEAN_KERNEL), np.uint8)
    closed = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    return np.asarray(cv2.morphologyEx(closed, cv2.MORPH_OPEN, kernel), dtype=np.float32)


def segments(
    gray: GrayArray,
    tolerance: float = 12.0,
    min_gap: float = 0.015,
    min_height: float = 0.12,
    limit: int = 2,
) -> list[tuple[int, int]]:
    """Horizontal bands of content separated by uniform rows, largest first (at most ``limit``).

    A listing photo shown inside a screenshot sits between a status bar above and a price,
    captions and buttons below, each separated from it by rows of one colour. Bands shorter
    than ``min_height`` of the image (a price, a row of buttons) are dropped, and so is a single
    band covering (nearly) all of it. A product photographed on white shows as its own outline
    only, hence the low ``min_height``; a photo filling the screen below the status bar is one
    band of 90 % or more of the height, still worth its own view.
    """
    h = gray.shape[0]
    med = _median_rows(gray)
    uniform = (np.abs(gray - med) > tolerance).mean(axis=1) < 0.01
    gap = max(2, round(min_gap * h))
    rows = np.flatnonzero(~uniform)
    if rows.size == 0:
        return []
    # a band: rows of content with no run of `gap` or more uniform rows between them
    breaks = np.flatnonzero(np.diff(rows) > gap)
    starts = [int(rows[0]), *(rows[breaks + 1]).tolist()]
    ends = [*(rows[breaks] + 1).tolist(), int(rows[-1]) + 1]
    bands = [(a, b) for a, b in zip(starts, ends, strict=True) if b - a >= min_height * h]
    if len(bands) == 1 and bands[0][1] - bands[0][0] >= 0.98 * h:
        return []
    bands.sort(key=lambda b: b[0] - b[1])
    return bands[:limit]


def hash_query(image: DecodedImage) -> list[HashVariant]:
    """Hashes computed for a listing image: the whole frame, its caption-suppressed view
    (:func:`clean_hash`) and side thirds (:func:`strip_hashes`), the border-trimmed image and
    each large band of content (a photo inside a screenshot, trimmed to its own content)."""
    views = [HashVariant("orig", dct_hash(image.frame))]
    views.append(HashVariant(CLEAN, clean_hash(image.frame)))
    views += strip_hashes(image.frame)
    if image.full is not None:
        views.append(HashVariant("trim", dct_hash(image.gray)))
    for top, bottom in segments(image.gray):
        band, _ = trim_uniform_border(image.gray[top:bottom])
        if min(band.shape) >= 16:
            views.append(HashVariant("band", dct_hash(band)))
    return _dedupe(views)


def _dedupe(hashes: Sequence[HashVariant]) -> list[HashVariant]:
    """First of each hash value within each :func:`view_kind` (kinds are only ever compared
    with their own, so a strip's hash equal to a whole-frame view's is still needed)."""
    seen: set[tuple[str, int]] = set()
    out: list[HashVariant] = []
    for h in hashes:
        key = (view_kind(h.variant), h.value)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


def hamming(a: int, b: int) -> int:
    """Hamming distance between two 64-bit hashes."""
    return (a ^ b).bit_count()

"""A hostile-file corpus, generated on the fly (nothing downloaded, nothing stored).

Each :class:`Hostile` is a file a seller or a careless brand might send, with the outcome we
promise for it: ``reject`` codes (a 4xx on upload, an ``image_unreadable`` reason when scoring)
or ``accept`` (an odd but genuine image that must be decoded and hashed like any other).
Everything must finish within :data:`TIME_BOUND_S` and :data:`MEMORY_BOUND_MB` per file.
"""

from __future__ import annotations

import io
import json
import re
import struct
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support.images import png_bomb, product_photo

#: Bounds per file, for decoding (detector) and for a whole HTTP request (API), measured on a
#: 2-core CI machine. Time is the CPU time of the process (``time.process_time``, all its
#: threads), not the wall clock: other jobs on a shared machine must not fail the test, while a
#: file that makes us compute for long still does. Memory is the growth of the process's peak
#: resident set size while handling the file, measured in a fresh subprocess.
TIME_BOUND_S = 2.0
MEMORY_BOUND_MB = 300


_MADE: dict[str, bytes] = {}


@dataclass(frozen=True)
class Hostile:
    name: str
    make: Callable[[], bytes]
    #: Acceptable ImageRejected codes; empty means the file must be accepted.
    reject: tuple[str, ...] = ()
    #: The content type a client claims for it on upload.
    claimed_type: str = "image/jpeg"
    #: Corrupt data that a decoder may repair: rejected with a listed code or decoded, both fine.
    may_decode: bool = False

    @property
    def accepted(self) -> bool:
        return not self.reject

    def data(self) -> bytes:
        """The file's bytes (made once per process)."""
        if self.name not in _MADE:
            _MADE[self.name] = self.make()
        return _MADE[self.name]

    def allows(self, outcome: str) -> bool:
        """Is ``outcome`` (a rejection code or ``"accepted"``) what we promise for this file?"""
        if outcome == "accepted":
            return self.accepted or self.may_decode
        return outcome in self.reject


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **kw)
    return out.getvalue()


def _photo(size: int = 256, seed: int = 11) -> Image.Image:
    return Image.open(io.BytesIO(product_photo(seed, size))).convert("RGB")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


# -- decompression bombs: huge dimensions, tiny files ---------------------------------------------


def jpeg_claiming(width: int = 65000, height: int = 65000) -> bytes:
    """A small real JPEG whose SOF header is rewritten to claim ``width`` x ``height``."""
    data = bytearray(_save(_photo(64), "JPEG", quality=80))
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def gif_bomb(width: int = 65000, height: int = 65000) -> bytes:
    """A GIF whose screen and single frame are 65000x65000, with a few bytes of pixel data."""
    header = (
        b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    )
    frame = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    lzw = b"\x02" + b"\x02\x4c\x01" + b"\x00"  # min code size 2, one tiny sub-block, terminator
    return header + frame + lzw + b";"


def webp_bomb(width: int = 16383, height: int = 16383) -> bytes:
    """A lossless WebP (VP8L) whose header claims ``width`` x ``height`` (the format's maximum)."""
    data = bytearray(_save(Image.new("RGB", (16, 16), (10, 200, 30)), "WEBP", lossless=True))
    at = data.find(b"VP8L")
    assert at > 0
    bits = (width - 1) | ((height - 1) << 14)  # then alpha bit and version, both 0
    struct.pack_into("<I", data, at + 9, bits)
    return bytes(data)


def webp_canvas_bomb() -> bytes:
    """An extended WebP (VP8X) whose canvas claims 16 million x 16 million pixels."""
    vp8l = _save(Image.new("RGB", (16, 16), (10, 200, 30)), "WEBP", lossless=True)[12:]
    side = (1 << 24) - 1
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (side - 1).to_bytes(3, "little") + (side - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + vp8l
    return b"RIFF" + struct.pack("<I", len(body)) + body


def png_bomb_rgba(side: int = 7000, depth: int = 8, colour_type: int = 6) -> bytes:
    """A valid all-zero PNG just under the pixel cap (49 M pixels), ~200 KB: RGBA by default."""
    ihdr = struct.pack(">IIBBBBB", side, side, depth, colour_type, 0, 0, 0)
    comp = zlib.compressobj(9)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = b"\x00" * (1 + channels * depth // 8 * side)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def png16_bomb() -> bytes:
    return png_bomb_rgba(depth=16, colour_type=0)


def jpeg_49m_pixels() -> bytes:
    """A real 7000x7000 JPEG (under the pixel cap): structure from noise stripes, ~1 MB."""
    rng = np.random.default_rng(9)
    small = Image.fromarray(rng.integers(0, 255, (70, 70), dtype=np.uint8))
    return _save(small.resize((7000, 7000), Image.Resampling.NEAREST), "JPEG", quality=50)


# -- truncated and corrupted ---------------------------------------------------------------------


def truncated(fmt: str, keep: float = 0.5) -> Callable[[], bytes]:
    def make() -> bytes:
        data = _save(_photo(), fmt, **({"quality": 85} if fmt != "PNG" else {}))
        return data[: int(len(data) * keep)]

    return make


def corrupted(fmt: str) -> Callable[[], bytes]:
    """The middle third of the file overwritten with noise (headers intact)."""

    def make() -> bytes:
        data = bytearray(_save(_photo(), fmt, **({"quality": 85} if fmt != "PNG" else {})))
        rng = np.random.default_rng(3)
        a, b = len(data) // 3, 2 * len(data) // 3
        data[a:b] = rng.integers(0, 256, b - a, dtype=np.uint8).tobytes()
        return bytes(data)

    return make


# -- not images at all --------------------------------------------------------------------------


def jpeg_magic_then_text() -> bytes:
    return b"\xff\xd8\xff\xe0" + b"this is not really a JPEG " * 40


def svg_image() -> bytes:
    return (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="400" height="400">'
        b'<rect width="400" height="400" fill="red"/><script>alert(1)</script></svg>'
    )


# -- animations, metadata -------------------------------------------------------------------------


def animated_gif(frames: int = 3000) -> bytes:
    """A 64x64 GIF with ``frames`` frames (copies of one LZW-coded frame block), ~4 MB."""
    one = _save(_photo(64).convert("P"), "GIF")
    flags = one[10]
    start = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    head, frame = one[:start], one[start:-1]  # the frame: image descriptor + data, before ';'
    assert frame[:1] == b","
    netscape = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    gce = b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # 10 ms per frame
    return head.replace(b"GIF87a", b"GIF89a") + netscape + (gce + frame) * frames + b";"


def gif_many_extensions(count: int = 1_000_000) -> bytes:
    """A GIF with a million one-byte comment extensions before its first frame (5 MB)."""
    one = _save(_photo(64).convert("P"), "GIF")
    flags = one[10]
    start = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    return b"GIF89a" + one[6:start] + b"\x21\xfe\x01x\x00" * count + one[start:]


def animated_webp(frames: int = 1000) -> bytes:
    rng = np.random.default_rng(5)
    seq = [
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(frames)
    ]
    return _save(seq[0], "WEBP", save_all=True, append_images=seq[1:], duration=10, quality=10)


def apng(frames: int = 2000) -> bytes:
    rng = np.random.default_rng(6)
    seq = [
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(frames)
    ]
    return _save(seq[0], "PNG", save_all=True, append_images=seq[1:], duration=10)


def huge_exif_jpeg() -> bytes:
    """A JPEG whose EXIF holds the most tags one IFD can count, and orientation 6."""
    entries = 5000  # 12 bytes each: 60 KB, about all one APP1 segment holds
    out = bytearray(b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08")
    out += struct.pack(">H", entries + 1)
    out += struct.pack(">HHII", 0x0112, 3, 1, 6 << 16)
    for i in range(entries):
        out += struct.pack(">HHII", 0x9000 + i, 7, 4, 0x41414141)  # inline 4-byte values
    out += b"\x00\x00\x00\x00"
    return _save(_photo(), "JPEG", quality=85, exif=bytes(out))


def huge_exif_png() -> bytes:
    """A 300x200 PNG with an 8 MB eXIf chunk: 4000 tags each pointing at 2 KB, orientation 8."""
    entries = 4000
    ifd_size = 2 + 12 * (entries + 1) + 4
    blob = b"x" * 2048
    out = bytearray(b"MM\x00\x2a\x00\x00\x00\x08")
    out += struct.pack(">H", entries + 1)
    out += struct.pack(">HHII", 0x0112, 3, 1, 8 << 16)
    for i in range(entries):
        out += struct.pack(">HHII", 0x9000 + i, 7, len(blob), 8 + ifd_size)  # all share one blob
    out += b"\x00\x00\x00\x00" + blob * 4000
    png = _save(_photo(300).resize((300, 200)), "PNG")
    iend = png.rfind(b"IEND") - 4
    return png[:iend] + _chunk(b"eXIf", bytes(out)) + png[iend:]


def many_jpeg_segments(count: int = 1_000_000) -> bytes:
    """A JPEG with a million empty COM segments before the image (a 4 MB file)."""
    data = _save(_photo(), "JPEG", quality=85)
    return data[:2] + b"\xff\xfe\x00\x02" * count + data[2:]


def many_png_chunks(count: int = 1_000_000) -> bytes:
    """A PNG with a million empty private ancillary chunks before the image data (12 MB)."""
    png = _save(_photo(), "PNG")
    idat = png.find(b"IDAT") - 4
    return png[:idat] + _chunk(b"prVt", b"") * count + png[idat:]


# -- odd but genuine pixel formats --------------------------------------------------------------


def cmyk_jpeg() -> bytes:
    return _save(_photo().convert("CMYK"), "JPEG", quality=90)


def png16() -> bytes:
    arr = np.asarray(_photo().convert("L"), dtype=np.uint16) * 257
    img = Image.fromarray(arr)
    assert img.mode == "I;16"
    return _save(img, "PNG")


def one_bit_png() -> bytes:
    return _save(_photo().convert("1"), "PNG")


def palette_transparent_png() -> bytes:
    img = _photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return _save(img, "PNG", transparency=0)


def tiff16() -> bytes:
    arr = np.asarray(_photo().convert("L"), dtype=np.uint16) * 257
    return _save(Image.fromarray(arr), "TIFF")


# -- polyglots -----------------------------------------------------------------------------------


def jpeg_zip_polyglot() -> bytes:
    """A JPEG with a ZIP archive appended: valid as both."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("payload.html", "<script>alert(document.cookie)</script>")
    return _save(_photo(), "JPEG", quality=85) + archive.getvalue()


def gif_html_polyglot() -> bytes:
    """A GIF whose comment and trailing bytes carry HTML with a script."""
    gif = _save(_photo(64).convert("P"), "GIF", comment=b"<html><script>alert(1)</script>")
    return gif + b"<html><body><script>alert(document.domain)</script></body></html>"


CORPUS: tuple[Hostile, ...] = (
    Hostile("png_bomb_30000", png_bomb, ("too_many_pixels",), "image/png"),
    Hostile("png_rgba_49M_pixels", png_bomb_rgba, ("too_flat",), "image/png"),
    Hostile("png16_49M_pixels", png16_bomb, ("too_flat",), "image/png"),
    Hostile("jpeg_49M_pixels", jpeg_49m_pixels, ()),
    Hostile("jpeg_claims_65000", jpeg_claiming, ("too_many_pixels",)),
    Hostile("gif_bomb_65000", gif_bomb, ("too_many_pixels",), "image/gif"),
    Hostile("webp_bomb_16383", webp_bomb, ("too_many_pixels",), "image/webp"),
    Hostile(
        "webp_canvas_bomb", webp_canvas_bomb, ("too_many_pixels", "not_an_image"), "image/webp"
    ),
    Hostile("jpeg_truncated", truncated("JPEG"), ("truncated",)),
    Hostile("png_truncated", truncated("PNG"), ("truncated",), "image/png"),
    Hostile("webp_truncated", truncated("WEBP"), ("truncated", "not_an_image"), "image/webp"),
    Hostile("jpeg_corrupted", corrupted("JPEG"), ("not_an_image", "truncated"), may_decode=True),
    Hostile("png_corrupted", corrupted("PNG"), ("not_an_image", "truncated"), "image/png", True),
    Hostile("webp_corrupted", corrupted("WEBP"), ("not_an_image", "truncated"), "image/webp", True),
    Hostile("zero_bytes", lambda: b"", ("not_an_image",)),
    Hostile("plain_text", lambda: b"hello, this is a text file\n" * 20, ("not_an_image",)),
    Hostile(
        "html",
        lambda: b"<!doctype html><html><body><img src=x></body></html>",
        ("not_an_image",),
        "image/png",
    ),
    Hostile("jpeg_magic_then_text", jpeg_magic_then_text, ("not_an_image", "truncated")),
    Hostile("svg", svg_image, ("not_an_image",), "image/svg+xml"),
    Hostile("gif_3000_frames", animated_gif, (), "image/gif"),
    Hostile("webp_1000_frames", animated_webp, (), "image/webp"),
    Hostile("apng_2000_frames", apng, (), "image/png"),
    Hostile("jpeg_huge_exif", huge_exif_jpeg, ()),
    Hostile("png_8mb_exif", huge_exif_png, (), "image/png"),
    Hostile("jpeg_million_segments", many_jpeg_segments, ("too_complex",)),
    Hostile("png_million_chunks", many_png_chunks, ("too_complex",), "image/png"),
    Hostile("gif_million_extensions", gif_many_extensions, ("too_complex",), "image/gif"),
    Hostile("jpeg_cmyk", cmyk_jpeg, ()),
    Hostile("png_16bit", png16, (), "image/png"),
    Hostile("tiff_16bit", tiff16, (), "image/tiff"),
    Hostile("png_1bit", one_bit_png, (), "image/png"),
    Hostile("png_palette_transparency", palette_transparent_png, (), "image/png"),
    Hostile("polyglot_jpeg_zip", jpeg_zip_polyglot, ()),
    Hostile("polyglot_gif_html", gif_html_polyglot, (), "text/html"),
)

BY_NAME = {h.name: h for h in CORPUS}


# -- measuring ------------------------------------------------------------------------------------


def _status(field: str) -> int:
    found = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(found.group(1)) * 1024 if found else 0


@contextmanager
def peak_growth(baseline: int | None = None) -> Iterator[list[float]]:
    """Yields a list that receives the peak RSS over the block, in MB above ``baseline`` bytes
    (default: the RSS at the start of the block). Linux only; elsewhere appends nothing.

    Resets the kernel's high-water mark first (``/proc/self/clear_refs``), so successive files
    are measured separately in one process. With a fixed baseline taken before the first file,
    memory left over from earlier files counts against the current one: an upper bound.
    """
    out: list[float] = []
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status("VmRSS") if baseline is None else baseline
    except OSError:
        yield out
        return
    yield out
    out.append((_status("VmHWM") - before) / 2**20)


def measure_decode(directory: Path, *, verification: bool = False) -> dict[str, dict[str, object]]:
    """Decode every ``*.bin`` in ``directory`` on both paths (upload: full decode and reference
    hashes; scoring: draft decode and query hashes), in this process; time and peak per file.

    With ``verification``, the stage-2 path instead (``verify.prepare_query`` and
    ``verify.prepare``: what a listing photo that has index candidates, and a reference, cost).
    """
    import gc

    from detector import images, verify

    results: dict[str, dict[str, object]] = {}
    images.decode(product_photo(1))  # warm up lazily loaded codecs before the baseline
    gc.collect()
    baseline = _status("VmRSS")
    for path in sorted(directory.glob("*.bin")):
        data = path.read_bytes()
        outcome = "accepted"
        gc.collect()
        start = time.process_time()
        with peak_growth(baseline) as peak:
            try:
                if verification:
                    verify.prepare_query(data)
                    verify.prepare(data)
                else:
                    for draft in (False, True):
                        decoded = images.decode(data, images.ImageLimits(), draft=draft)
                        (images.hash_query if draft else images.hash_reference)(decoded)
            except images.ImageRejected as exc:
                outcome = exc.code
        results[path.stem] = {
            "outcome": outcome,
            "seconds": time.process_time() - start,
            "peak_mb": peak[0] if peak else None,
        }
    return results


if __name__ == "__main__":  # python -m tests.support.hostile DIR [--verify]: the measurement
    print(json.dumps(measure_decode(Path(sys.argv[1]), verification="--verify" in sys.argv)))

"""Test images made on the fly (synthetic; nothing downloaded)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw


def product_photo(seed: int, size: int = 400, fmt: str = "JPEG") -> bytes:
    """A synthetic 'product shot': shapes and texture on a light background, unique per seed."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, size * 3 // 4, 2)
        w, h = rng.integers(size // 8, size // 2, 2)
        colour = tuple(int(c) for c in rng.integers(0, 220, 3))
        if rng.random() < 0.5:
            draw.ellipse([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=colour)
        else:
            draw.rectangle([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=colour)
    noise = rng.integers(-12, 12, (size, size, 3))
    arr = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format=fmt, quality=90)
    return out.getvalue()


def flat_image(size: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 200, 200)).save(out, format="PNG")
    return out.getvalue()


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A complete, valid 1-bit PNG of width x height: ~100 KB on disk, ~900 M pixels decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")

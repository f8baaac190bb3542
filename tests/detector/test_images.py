from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from detector import images
from tests.support.images import flat_image, png_bomb, product_photo


def _decode(data: bytes, **kw: object) -> images.DecodedImage:
    return images.decode(data, images.ImageLimits(), **kw)  # type: ignore[arg-type]


def _reencode(img: Image.Image, fmt: str = "JPEG", **kw: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **kw)
    return out.getvalue()


def test_same_image_same_hash_across_resize_and_recompression() -> None:
    data = product_photo(1, 800)
    img = Image.open(io.BytesIO(data))
    base = images.dct_hash(_decode(data).gray)
    small = _reencode(img.resize((300, 300)), quality=60)
    assert images.hamming(base, images.dct_hash(_decode(small).gray)) <= 6


def test_different_images_far_apart() -> None:
    hashes = [images.dct_hash(_decode(product_photo(s)).gray) for s in range(20)]
    dists = [images.hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(dists) > 10


def test_draft_decoding_agrees_with_full_decode() -> None:
    data = product_photo(5, 1000)
    full = images.dct_hash(_decode(data, draft=False).gray)
    fast = images.dct_hash(_decode(data, draft=True).gray)
    assert images.hamming(full, fast) <= 4


def test_uniform_border_is_trimmed() -> None:
    data = product_photo(2, 400)
    img = Image.open(io.BytesIO(data))
    padded = ImageOps.expand(img, border=60, fill=(255, 255, 255))
    a = _decode(data)
    b = _decode(_reencode(padded, quality=95))
    assert b.trimmed[0] > 0.1
    assert images.hamming(images.dct_hash(a.gray), images.dct_hash(b.gray)) <= 6


def test_alpha_is_flattened_onto_white() -> None:
    rgba = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    rgba.paste(Image.open(io.BytesIO(product_photo(8, 100))), (50, 50))
    dec = _decode(_reencode(rgba, "PNG"))
    # the transparent surround became white and was trimmed away as a uniform border
    assert dec.trimmed[0] > 0.2


def test_exif_orientation_applied() -> None:
    img = Image.open(io.BytesIO(product_photo(3, 300))).resize((400, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    rotated_on_display = _reencode(img, exif=exif, quality=95)
    upright = _reencode(img.transpose(Image.Transpose.ROTATE_270), quality=95)
    a, b = _decode(rotated_on_display), _decode(upright)
    assert a.gray.shape == b.gray.shape
    assert images.hamming(images.dct_hash(a.gray), images.dct_hash(b.gray)) <= 4


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "not_an_image"),
        (b"plain text", "not_an_image"),
        (b"<html><body>hi</body></html>", "not_an_image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "not_an_image"),
        (flat_image(), "too_flat"),
    ],
)
def test_rejections_have_codes(data: bytes, code: str) -> None:
    with pytest.raises(images.ImageRejected) as err:
        _decode(data)
    assert err.value.code == code
    assert err.value.reason


def test_truncated_jpeg_and_bomb() -> None:
    with pytest.raises(images.ImageRejected) as err:
        _decode(product_photo(4, 600)[:3000])
    assert err.value.code == "truncated"
    with pytest.raises(images.ImageRejected) as err:
        _decode(png_bomb())
    assert err.value.code == "too_many_pixels"
    assert "900,000,000 pixels" in err.value.reason


def test_pixel_limit_is_ours_not_pillows() -> None:
    data = product_photo(1, 400)
    with pytest.raises(images.ImageRejected) as err:
        images.decode(data, images.ImageLimits(max_pixels=100_000))
    assert err.value.code == "too_many_pixels"


def test_sixteen_bit_and_cmyk_images() -> None:
    base = np.asarray(Image.open(io.BytesIO(product_photo(9))).convert("L"), dtype=np.uint16)
    img16 = Image.fromarray(base * 256)
    assert img16.mode == "I;16"
    dec16 = _decode(_reencode(img16, "PNG"))
    dec8 = _decode(_reencode(Image.fromarray(base.astype(np.uint8)), "PNG"))
    assert images.hamming(images.dct_hash(dec16.gray), images.dct_hash(dec8.gray)) <= 4
    cmyk = Image.open(io.BytesIO(product_photo(9))).convert("CMYK")
    assert _decode(_reencode(cmyk, "JPEG")).quality > 5


def test_reference_variants_cover_mirror() -> None:
    data = product_photo(6, 500)
    ref = images.hash_reference(_decode(data))
    mirrored = _reencode(Image.open(io.BytesIO(data)).transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    q = images.hash_query(_decode(mirrored))[0].value
    best = min(ref, key=lambda h: images.hamming(h.value, q))
    assert images.hamming(best.value, q) <= 6
    assert "mirror" in best.variant


def _line_art(size: int = 600) -> Image.Image:
    """A thin line-art product on white: too little ink for border trimming to single it out."""
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.arc((150, 60, 330, 240), 200, 340, fill=(40, 40, 40), width=10)
    d.line((240, 240, 260, 420), fill=(30, 30, 30), width=12)
    d.ellipse((220, 400, 420, 560), outline=(20, 20, 20), width=12)
    d.ellipse((380, 470, 440, 530), fill=(160, 160, 170))
    d.text((120, 300), "ACME", fill=(10, 10, 10))
    return img


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_photo_inside_a_phone_screenshot_is_found_by_its_band(seed: int) -> None:
    from training.attacks import phone_screenshot

    photo = _line_art()
    reference = images.hash_reference(_decode(_reencode(photo, quality=92), draft=False))
    decoded = _decode(_reencode(phone_screenshot(photo, seed), quality=88))
    # trimming peels the bezel only: the status bar, price and buttons stay in the frame
    assert max(decoded.trimmed) < 0.1
    views = images.hash_query(decoded)
    bands = [v for v in views if v.variant == "band"]
    assert bands, "no band view: the photo between the status bar and the price was not found"
    assert min(images.hamming(v.value, r.value) for v in bands for r in reference) <= 10
    others = [v for v in views if v.variant != "band"]
    assert min(images.hamming(v.value, r.value) for v in others for r in reference) > 10


def test_segments_split_on_uniform_rows() -> None:
    gray = np.full((200, 100), 255.0, dtype=np.float32)
    gray[4:12, 10:40] = 0.0  # status bar
    gray[30:130, 20:80] = np.linspace(0, 200, 60)  # the photo
    gray[140:150, 5:60] = 30.0  # price
    gray[170:190, 5:95] = 90.0  # buttons
    assert images.segments(gray) == [(30, 130)]
    assert images.segments(gray[30:130]) == []  # one band filling the image is no segment


def test_segments_find_a_product_on_white_and_a_photo_below_the_status_bar() -> None:
    # a product photographed on white shows in a screenshot as its own outline only: a short band
    gray = np.full((240, 180), 255.0, dtype=np.float32)
    gray[0:6, 10:170] = 20.0  # status bar
    gray[70:110, 30:150] = np.linspace(0, 200, 120)  # the product, 17 % of the height
    gray[186:194, 10:90] = 30.0  # price
    gray[214:228, 10:170] = 90.0  # buttons
    assert images.segments(gray) == [(70, 110)]
    # a photo on a grey background filling the screen below the status bar: still a band (the
    # whole-frame view includes the status bar)
    gray = np.full((185, 180), 255.0, dtype=np.float32)
    gray[0:6, 10:170] = 20.0
    gray[11:185, 4:176] = 200.0
    gray[60:120, 40:140] = np.linspace(0, 150, 100)
    assert images.segments(gray) == [(11, 185)]


def test_segments_ignore_a_plain_photo() -> None:
    decoded = _decode(product_photo(5))
    assert images.segments(decoded.gray) == []
    whole = [v.variant for v in images.hash_query(decoded) if images.view_kind(v.variant) == ""]
    assert whole in (["orig"], ["orig", "trim"])

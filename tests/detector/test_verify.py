"""Stage-2 verification on images drawn here (no corpus needed)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from detector import verify
from detector.images import ImageRejected
from tests.support.images import flat_image


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _product(mark: str | None, size: int = 900) -> Image.Image:
    """A product stand-in (a bag with handles, stitching and a zip) with a mark on it."""
    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    s = size / 900
    d.rounded_rectangle(
        (150 * s, 260 * s, 750 * s, 780 * s), radius=int(40 * s), fill=(40, 70, 150)
    )
    d.arc((300 * s, 120 * s, 600 * s, 420 * s), 180, 360, fill=(30, 30, 30), width=int(22 * s))
    for i in range(12):
        x = (180 + 48 * i) * s
        d.line((x, 300 * s, x + 20 * s, 300 * s), fill=(230, 230, 230), width=int(5 * s))
        d.line((x, 740 * s, x + 20 * s, 740 * s), fill=(230, 230, 230), width=int(5 * s))
    d.rectangle((180 * s, 330 * s, 720 * s, 345 * s), fill=(200, 170, 60))
    d.ellipse((660 * s, 690 * s, 700 * s, 730 * s), fill=(200, 170, 60))
    cx, cy = 450 * s, 540 * s
    if mark == "star":  # a five-pointed star with a ring
        pts = []
        for k in range(10):
            r = (120 if k % 2 == 0 else 50) * s
            a = math.pi / 2 + k * math.pi / 5
            pts.append((cx + r * math.cos(a), cy - r * math.sin(a)))
        d.polygon(pts, fill=(250, 250, 250))
        d.ellipse(
            (cx - 150 * s, cy - 150 * s, cx + 150 * s, cy + 150 * s),
            outline=(250, 250, 250),
            width=int(12 * s),
        )
    elif mark == "bars":  # three slanted bars and a wordmark
        for k in range(3):
            x = cx - 120 * s + k * 80 * s
            d.polygon(
                [
                    (x, cy + 80 * s),
                    (x + 50 * s, cy + 80 * s),
                    (x + 110 * s, cy - 90 * s),
                    (x + 60 * s, cy - 90 * s),
                ],
                fill=(250, 250, 250),
            )
        d.text(
            (cx, cy + 130 * s), "KLX", font=_font(int(60 * s)), fill=(250, 250, 250), anchor="mm"
        )
    return img


def _bytes(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def reference() -> verify.VerifyView:
    return verify.prepare(_bytes(_product("star"), "JPEG", quality=92))


def _overlay(img: Image.Image) -> Image.Image:
    out = img.copy()
    d = ImageDraw.Draw(out)
    w, h = out.size
    d.text(
        (w / 2, h / 2),
        "SUPER SALE",
        font=_font(int(h * 0.12)),
        fill=(220, 20, 30),
        anchor="mm",
        stroke_width=3,
        stroke_fill=(255, 255, 255),
    )
    return out


ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop": lambda im: im.crop((90, 40, 860, 830)),
    "rotate": lambda im: im.rotate(5, resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255)),
    "mirror": ImageOps.mirror,
    "text_overlay": _overlay,
    "small_jpeg": lambda im: Image.open(
        io.BytesIO(_bytes(im.resize((400, 400)), "JPEG", quality=40))
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_transformed_copies_are_accepted(reference: verify.VerifyView, attack: str) -> None:
    query = verify.prepare_query(_bytes(ATTACKS[attack](_product("star"))))
    result = verify.verify(query, reference)
    assert result.accepted, result.reason
    assert result.inliers >= verify.MIN_INLIERS
    assert 0.0 <= result.score <= 1.0
    if attack == "mirror":
        assert result.transform.startswith("mirror")
    if attack == "crop":
        assert result.coverage < 0.97 and "crop" in result.transform


@pytest.mark.parametrize("mark", ["bars", None])
def test_same_product_with_another_mark_is_rejected(
    reference: verify.VerifyView, mark: str | None
) -> None:
    query = verify.prepare_query(_bytes(_product(mark), "JPEG", quality=90))
    result = verify.verify(query, reference)
    assert not result.accepted, result.reason
    assert result.differing_regions, "the differing mark must be shown to the reviewer"
    x0, y0, x1, y1, label = max(
        result.differing_regions, key=lambda r: (r[2] - r[0]) * (r[3] - r[1])
    )
    # the mark sits around (0.5, 0.6) of the image
    assert x0 < 0.5 < x1 and y0 < 0.6 < y1
    assert label in {"replaced", "removed", "changed", "overlay"}


def _caption(img: Image.Image, centre: tuple[int, int], size: int, outline: int) -> Image.Image:
    """A red 'SALE -50%' caption with a white outline, as sellers stamp across stolen photos."""
    ImageDraw.Draw(img).text(
        centre,
        "SALE -50%",
        font=_font(size),
        fill=(220, 20, 30),
        anchor="mm",
        stroke_width=outline,
        stroke_fill=(255, 255, 255),
    )
    return img


def _jacket(mark: bool, tint: tuple[int, int, int] = (150, 150, 150)) -> Image.Image:
    """A garment whose only strong colour is its mark, drawn in the garment's own grey level
    (luma 150): in grey levels the mark is invisible, only its colour tells it apart."""
    img = Image.new("RGB", (900, 900), (252, 252, 252))
    d = ImageDraw.Draw(img)
    d.polygon([(250, 150), (650, 150), (760, 780), (140, 780)], fill=tint, outline=(30, 30, 30))
    for k in range(9):  # seams and stitching: structure that a copy reproduces
        y = 220 + 60 * k
        d.line((220 + 5 * k, y, 680 - 5 * k, y + 8), fill=(70, 70, 70), width=3)
    d.line((450, 150, 450, 780), fill=(40, 40, 40), width=5)
    if mark:
        d.rounded_rectangle((300, 330, 520, 550), radius=40, fill=(230, 130, 60))
        d.text((410, 440), "mi", font=_font(120), fill=(110, 160, 215), anchor="mm")
    return img


@pytest.mark.parametrize(
    "tint", [(150, 150, 150), (140, 150, 165)], ids=["grey-garment", "tinted-garment"]
)
def test_mark_taken_off_a_garment_is_rejected(tint: tuple[int, int, int]) -> None:
    """The mark is the reference's only colour (or its only strong colour): a copy of the
    product without it is not the same photo, however well the rest aligns."""
    reference = verify.prepare(_bytes(_jacket(True, tint), "JPEG", quality=92))
    query = verify.prepare_query(_bytes(_jacket(False, tint), "JPEG", quality=90))
    result = verify.verify(query, reference)
    assert not result.accepted, result.reason
    assert result.features["colour_lost"] > verify.COLOUR_LOST_VETO
    assert "coloured mark is gone" in result.reason


def test_caption_painted_over_a_coloured_mark_is_not_a_lost_mark() -> None:
    """A caption with a thick white outline across the garment's only coloured mark hides the
    mark's colour under its strokes; the caption also paints across the plain garment around the
    mark, so the colour is covered, not taken off, and the copy is accepted (the same garment
    with the mark taken off is rejected, above)."""
    reference = verify.prepare(_bytes(_jacket(True), "JPEG", quality=92))
    img = _caption(_jacket(True), (450, 440), size=130, outline=14)
    result = verify.verify(verify.prepare_query(_bytes(img, "JPEG", quality=90)), reference)
    assert result.features["colour_lost"] < verify.COLOUR_LOST_VETO, result.reason
    assert result.accepted, result.reason


def test_greyed_copy_of_a_colourful_photo_is_accepted() -> None:
    colourful = _product("star")
    reference = verify.prepare(_bytes(colourful, "JPEG", quality=92))
    grey = ImageOps.grayscale(colourful).convert("RGB")
    result = verify.verify(verify.prepare_query(_bytes(grey, "JPEG", quality=90)), reference)
    assert result.accepted, result.reason


def test_big_caption_across_the_mark_is_accepted(reference: verify.VerifyView) -> None:
    """A caption over most of the width hides much of the mark; between its strokes the
    photo still shows, and nothing of the reference is missing there."""
    img = _caption(_product("star"), (450, 540), size=150, outline=8)
    result = verify.verify(verify.prepare_query(_bytes(img, "JPEG", quality=90)), reference)
    assert result.accepted, result.reason
    assert result.features["colour_lost"] < verify.COLOUR_LOST_VETO
    assert any(r[4] == "overlay" for r in result.differing_regions)
    # the reference structure it hides lies under paint laid across the photo
    assert result.features["missing_under_paint"] > 0.8


def test_caption_over_the_mark_is_judged_in_the_paint_regime(
    reference: verify.VerifyView, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pair whose missing structure is all under paint is held to the model's paint-regime
    threshold, not to the general one (and a pair outside the regime the other way round)."""
    img = _caption(_product("star"), (450, 540), size=150, outline=8)
    query = verify.prepare_query(_bytes(img, "JPEG", quality=90))
    model = verify._model()
    monkeypatch.setattr(model, "threshold", 1.01)
    monkeypatch.setattr(model, "paint_threshold", 0.0)
    captioned = verify.verify(query, reference)
    assert captioned.features["missing_under_paint"] >= verify.PAINT_REGIME
    assert captioned.accepted, captioned.reason
    plain = verify.verify(
        verify.prepare_query(_bytes(_product("star"), "JPEG", quality=90)), reference
    )
    assert plain.features["missing_under_paint"] < verify.PAINT_REGIME
    assert not plain.accepted
    monkeypatch.setattr(model, "threshold", 0.0)
    monkeypatch.setattr(model, "paint_threshold", 1.01)
    assert not verify.verify(query, reference).accepted


@pytest.mark.parametrize("mark", ["bars", None], ids=["other-mark", "no-mark"])
def test_swapped_or_removed_mark_is_not_paint_over_the_photo(
    reference: verify.VerifyView, mark: str | None
) -> None:
    """A mark swapped or taken off changes the product where the mark was, and nothing around
    it: the missing reference structure is not under paint."""
    query = verify.prepare_query(_bytes(_product(mark), "JPEG", quality=90))
    result = verify.verify(query, reference)
    assert not result.accepted, result.reason
    assert result.features["missing_under_paint"] < 0.2


def _small_product(mark: str | None) -> Image.Image:
    """The bag, small, on a big white canvas (its content ~5 % of the image)."""
    img = Image.new("RGB", (1300, 1300), (255, 255, 255))
    img.paste(_product(mark, 360), (120, 780))
    return img


def test_small_product_on_a_big_canvas_is_compared_on_its_content() -> None:
    """Another mark on a small product differs in a region too small, against the whole canvas,
    to be reported; against the product (the reference's content box) it is reported and the
    look-alike rejected, while copies are accepted."""
    data = _bytes(_small_product("star"), "JPEG", quality=92)
    reference = verify.prepare_reference(data)
    assert reference.content is not None
    x0, y0, x1, y1 = reference.content
    h, w = reference.shape
    # the bag's body and handle span about (0.14-0.32, 0.64-0.84) of the canvas
    assert x0 / w < 0.14 and x1 / w > 0.32 and y0 / h < 0.64 and y1 / h > 0.84
    assert (x1 - x0) * (y1 - y0) < 0.1 * w * h
    query = verify.prepare_query(_bytes(_small_product("bars"), "JPEG", quality=90))
    lookalike = verify.verify(query, reference)
    assert not lookalike.accepted, lookalike.reason
    assert lookalike.differing_regions, lookalike.reason
    bx0, by0, bx1, by1, _ = lookalike.differing_regions[0]
    # on the mark: (0.18-0.29, 0.72-0.82) of the canvas
    assert 0.18 < (bx0 + bx1) / 2 < 0.29 and 0.72 < (by0 + by1) / 2 < 0.82
    # measured against the whole canvas, the same difference is not reported at all
    whole = verify.verify(query, verify.prepare(data))
    assert not whole.differing_regions
    assert whole.score > lookalike.score
    for copy in (
        _small_product("star"),
        _small_product("star").crop((60, 600, 1240, 1300)),
        ImageOps.expand(_small_product("star"), 130, fill=(255, 255, 255)),
        Image.open(
            io.BytesIO(_bytes(_small_product("star").resize((650, 650)), "JPEG", quality=40))
        ),
    ):
        result = verify.verify(verify.prepare_query(_bytes(copy, "JPEG", quality=90)), reference)
        assert result.accepted, result.reason


def test_reference_filling_its_frame_has_no_content_box() -> None:
    rng = np.random.default_rng(5)
    photo = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).resize((800, 600))
    assert verify.prepare_reference(_bytes(photo, "JPEG", quality=92)).content is None
    assert verify.prepare_query(_bytes(_small_product("star"))).content is None


def _faint_badge(img: Image.Image) -> Image.Image:
    """A navy shield with a lion-like scribble on the blue bag: ~15 grey levels darker than the
    bag, below the comparison's fixed grey-level difference (``DIFF_LEVEL``)."""
    out = img.copy()
    d = ImageDraw.Draw(out)
    s = out.size[0] / 900
    d.polygon(
        [
            (560 * s, 420 * s),
            (700 * s, 420 * s),
            (700 * s, 560 * s),
            (630 * s, 640 * s),
            (560 * s, 560 * s),
        ],
        fill=(28, 55, 128),
        outline=(20, 45, 115),
    )
    for k in range(4):
        y = (460 + 35 * k) * s
        d.arc(
            (585 * s, y - 20 * s, 675 * s, y + 20 * s),
            200,
            340,
            fill=(20, 42, 110),
            width=int(6 * s),
        )
    return out


def test_faint_mark_taken_off_is_rejected() -> None:
    """A dark mark on a dark product taken off changes nothing the fixed grey-level and edge
    levels see; the flattened patch of the reference's faint structure does."""
    reference = verify.prepare(_bytes(_faint_badge(_product(None)), "JPEG", quality=92))
    query = verify.prepare_query(_bytes(_product(None), "JPEG", quality=90))
    result = verify.verify(query, reference)
    assert not result.accepted, result.reason
    assert result.features["flattened"] > verify.FLATTENED_VETO


def test_flattened_mark_vetoes_what_the_model_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The veto holds whatever the model says (here a model that accepts everything), and the
    reviewer is shown where the mark was."""
    model = verify._model()
    monkeypatch.setattr(model, "threshold", 0.0)
    reference = verify.prepare(_bytes(_faint_badge(_product(None)), "JPEG", quality=92))
    query = verify.prepare_query(_bytes(_product(None), "JPEG", quality=90))
    result = verify.verify(query, reference)
    assert not result.accepted
    assert "but a mark-sized patch of the reference is gone" in result.reason
    x0, y0, x1, y1, label = result.differing_regions[-1]
    assert label == "removed"
    # the badge spans (0.62-0.78, 0.47-0.71) of the image
    assert x0 < 0.7 < x1 and y0 < 0.55 < y1
    copy = verify.prepare_query(_bytes(ImageOps.mirror(_faint_badge(_product(None)))))
    assert verify.verify(copy, reference).accepted


@pytest.mark.parametrize("attack", ["mirror", "small_jpeg", "crop"])
def test_copies_keep_a_faint_mark(attack: str) -> None:
    """Copies keep the faint mark's structure, even soft ones (the reference is blurred to the
    query's sharpness before the comparison)."""
    product = _faint_badge(_product(None))
    reference = verify.prepare(_bytes(product, "JPEG", quality=92))
    query = verify.prepare_query(_bytes(ATTACKS[attack](product)))
    result = verify.verify(query, reference)
    assert result.features["flattened"] < 0.5 * verify.FLATTENED_VETO, result.reason
    assert result.accepted, result.reason


def test_unrelated_image_is_rejected(reference: verify.VerifyView) -> None:
    rng = np.random.default_rng(3)
    noise = Image.fromarray(rng.integers(0, 255, (500, 500, 3), dtype=np.uint8))
    result = verify.verify(verify.prepare_query(_bytes(noise)), reference)
    assert not result.accepted
    assert result.transform == "none" or result.score < 0.5


def test_evidence_fields(reference: verify.VerifyView) -> None:
    query = verify.prepare_query(_bytes(_overlay(_product("star"))))
    result = verify.verify(query, reference)
    assert result.reason and "inliers" in result.reason
    assert 0.9 <= result.coverage <= 1.0
    assert result.transform
    for x0, y0, x1, y1, label in result.differing_regions:
        assert 0.0 <= x0 <= x1 <= 1.0 and 0.0 <= y0 <= y1 <= 1.0
        assert label in {"overlay", "watermark", "replaced", "removed", "changed"}
    assert set(verify.FEATURES) <= set(result.features)


def test_deterministic(reference: verify.VerifyView) -> None:
    data = _bytes(ATTACKS["rotate"](_product("star")))
    first = verify.verify(verify.prepare_query(data), reference)
    for _ in range(3):
        again = verify.verify(verify.prepare_query(data), reference)
        assert again == first


def test_prepare_bounds_size_and_keeps_original_size() -> None:
    view = verify.prepare(_bytes(_product("star", 1000), "JPEG", quality=90))
    assert max(view.shape) <= 384
    assert (view.width, view.height) == (1000, 1000)
    assert len(view.points) == len(view.descriptors) > 50
    # alignment mirrors the query, never the reference
    assert len(view.mirror_points) == len(view.mirror_descriptors) == 0
    query = verify.prepare_query(_bytes(_product("star", 1000), "JPEG", quality=90))
    assert len(query.mirror_points) == len(query.mirror_descriptors) > 50
    assert len(view.points) <= verify.REFERENCE_FEATURES


def test_queries_get_more_keypoints_than_references() -> None:
    data = _bytes(_overlay(_product("star", 1000)), "JPEG", quality=90)
    assert len(verify.prepare_query(data).points) > len(verify.prepare(data).points)


def test_transparency_is_flattened_on_white() -> None:
    rgba = Image.new("RGBA", (600, 600), (0, 0, 0, 0))
    rgba.paste(_product("star", 400), (100, 100))
    view = verify.prepare(_bytes(rgba))
    assert int(view.gray[0, 0]) == 255


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "not_an_image"),
        (b"not an image at all", "not_an_image"),
        (flat_image(), "too_flat"),
    ],
)
def test_bad_input_is_rejected(data: bytes, code: str) -> None:
    with pytest.raises(ImageRejected) as info:
        verify.prepare(data)
    assert info.value.code == code


def test_truncated_input_is_rejected() -> None:
    data = _bytes(_product("star"), "JPEG", quality=90)
    with pytest.raises(ImageRejected):
        verify.prepare(data[: len(data) // 3])

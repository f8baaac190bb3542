"""The attack grid and the evaluation arithmetic, on images made here (no corpus, no network)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageChops, ImageDraw

from training import attacks as A
from training.eval_images import (
    ORIGINAL,
    EvalImage,
    Matcher,
    NaiveMatcher,
    attack_seed,
    evaluate,
    markdown_table,
    write_report,
)


def make_image(w: int = 400, h: int = 300) -> Image.Image:
    """A product-photo-like test image: white ground, a coloured block and a gradient strip."""
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((w // 5, h // 4, w // 2, 3 * h // 4), fill=(200, 30, 40))
    draw.ellipse((w // 2, h // 5, 4 * w // 5, h // 2), fill=(30, 60, 160))
    for x in range(w):
        draw.line((x, h - 20, x, h - 1), fill=(x * 255 // w, 100, 255 - x * 255 // w))
    return img


def as_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_grid_is_exactly_the_specified_one() -> None:
    assert [a.name for a in A.ATTACKS] == [
        "jpeg_q25",
        "downscale_30",
        "crop_05_centre",
        "crop_05_offcentre",
        "crop_10_centre",
        "crop_10_offcentre",
        "crop_15_centre",
        "crop_15_offcentre",
        "rotate_3",
        "rotate_6",
        "mirror",
        "border_10_white",
        "text_latin",
        "text_chinese",
        "watermark_tiled",
        "gamma_0.7",
        "phone_screenshot",
        "combo_crop5_jpeg40_text",
    ]
    assert set(A.ATTACKS_BY_NAME) == {a.name for a in A.ATTACKS}


@pytest.mark.parametrize("attack", A.ATTACKS, ids=lambda a: a.name)
def test_every_attack_changes_the_image_and_is_deterministic(attack: A.Attack) -> None:
    img = make_image()
    out1, out2 = attack(img, 7), attack(img, 7)
    assert out1.mode == "RGB"
    assert out1.tobytes() == out2.tobytes()
    assert out1.size != img.size or out1.tobytes() != img.tobytes()
    assert img.tobytes() == make_image().tobytes()  # the input is untouched


def test_jpeg_keeps_size_and_loses_detail() -> None:
    img = make_image()
    out = A.jpeg_recompress(img, A.JPEG_QUALITY)
    assert out.size == img.size
    err = np.abs(as_array(out) - as_array(img)).mean()
    assert 0.5 < err < 20


def test_downscale_to_30_percent() -> None:
    assert A.downscale(make_image(400, 300), 0.30).size == (120, 90)


@pytest.mark.parametrize("fraction", A.CROP_FRACTIONS)
def test_centred_crop_removes_fraction_per_side(fraction: float) -> None:
    img = make_image(400, 300)
    out = A.crop(img, fraction, "centre")
    dx, dy = round(400 * fraction), round(300 * fraction)
    assert out.size == (400 - 2 * dx, 300 - 2 * dy)
    assert out.tobytes() == img.crop((dx, dy, 400 - dx, 300 - dy)).tobytes()


@pytest.mark.parametrize("fraction", A.CROP_FRACTIONS)
@pytest.mark.parametrize("anchor", A.OFF_CENTRE_ANCHORS)
def test_off_centre_crop_loses_the_same_area_from_two_sides(
    fraction: float, anchor: A.CropAnchor
) -> None:
    img = make_image(400, 300)
    centred = A.crop(img, fraction, "centre")
    out = A.crop(img, fraction, anchor)
    assert out.size == centred.size
    left, top, right, bottom = A.crop_box(img.size, fraction, anchor)
    dx, dy = round(400 * fraction), round(300 * fraction)
    assert {left, 400 - right} == {0, 2 * dx}
    assert {top, 300 - bottom} == {0, 2 * dy}
    assert out.tobytes() == img.crop((left, top, right, bottom)).tobytes()


def test_off_centre_attack_picks_its_corner_from_the_seed() -> None:
    img = make_image()
    attack = A.ATTACKS_BY_NAME["crop_10_offcentre"]
    outputs = {attack(img, seed).tobytes() for seed in range(20)}
    assert len(outputs) > 1  # different seeds, different corners
    assert attack(img, 3).tobytes() == attack(img, 3).tobytes()


@pytest.mark.parametrize("degrees", A.ROTATION_DEGREES)
def test_rotation_keeps_the_frame_and_fills_corners_white(degrees: float) -> None:
    img = Image.new("RGB", (400, 300), (0, 0, 0))
    out = A.rotate(img, degrees)
    assert out.size == (400, 300)
    arr = as_array(out)
    for y, x in ((0, 0), (0, 399), (299, 0), (299, 399)):
        assert tuple(arr[y, x]) == (255, 255, 255)
    assert tuple(arr[150, 200]) == (0, 0, 0)


def test_mirror_is_a_horizontal_flip() -> None:
    img = make_image()
    out = A.mirror(img)
    assert np.array_equal(as_array(out), as_array(img)[:, ::-1])
    assert A.mirror(out).tobytes() == img.tobytes()


def test_border_adds_ten_percent_white_per_side() -> None:
    img = Image.new("RGB", (400, 300), (10, 20, 30))
    out = A.add_border(img, A.BORDER_FRACTION)
    assert out.size == (480, 360)
    arr = as_array(out)
    assert (arr[:30, :] == 255).all() and (arr[-30:, :] == 255).all()
    assert (arr[:, :40] == 255).all() and (arr[:, -40:] == 255).all()
    assert out.crop((40, 30, 440, 330)).tobytes() == img.tobytes()


def test_gamma_brightens_midtones_and_keeps_extremes() -> None:
    img = Image.new("RGB", (4, 1))
    img.putdata([(0, 0, 0), (128, 128, 128), (64, 64, 64), (255, 255, 255)])
    out = as_array(A.gamma(img, A.GAMMA))[0]
    assert out[0].tolist() == [0, 0, 0] and out[3].tolist() == [255, 255, 255]
    assert out[1, 0] == round(255 * (128 / 255) ** 0.7) > 128
    assert out[2, 0] > 64


def test_text_overlays_cover_the_middle_band() -> None:
    img = Image.new("RGB", (600, 600), "white")
    for name in ("text_latin", "text_chinese"):
        out = A.ATTACKS_BY_NAME[name](img, 1)
        bbox = ImageChops.difference(out, img).getbbox()
        assert bbox is not None
        left, top, right, bottom = bbox
        assert right - left > 0.6 * 600, name  # big: most of the width
        assert top < 300 < bottom, name  # across the middle
        assert top > 150 and bottom < 450, name


def test_chinese_text_uses_a_cjk_font_when_installed() -> None:
    if A.find_font("cjk") is None:
        pytest.skip("no CJK font installed (apt-get install fonts-wqy-zenhei)")
    img = Image.new("RGB", (600, 600), "white")
    a = A.text_overlay(img, "正品特价", "cjk")
    b = A.text_overlay(img, "限时特价", "cjk")
    assert a.tobytes() != b.tobytes()  # real glyphs, not identical missing-glyph boxes


def test_watermark_is_tiled_and_semi_transparent() -> None:
    img = Image.new("RGB", (600, 600), "white")
    out = A.tiled_watermark(img, "shop8888")
    arr = as_array(out)
    marked: np.ndarray = np.asarray((arr < 250).any(axis=2))
    # spread over the whole image, not one spot
    for qy in (slice(0, 300), slice(300, 600)):
        for qx in (slice(0, 300), slice(300, 600)):
            assert marked[qy, qx].mean() > 0.01
    # 30% of dark grey over white: never darker than ~0.7 * 255 + 0.3 * 40
    assert arr.min() >= 255 * 0.7 + 40 * 0.3 - 3


def test_phone_screenshot_is_portrait_and_contains_the_scaled_image() -> None:
    img = Image.new("RGB", (500, 500), (0, 200, 0))
    out = A.phone_screenshot(img, 5)
    w, h = out.size
    assert (w, h) == (A.PHONE_WIDTH, round(A.PHONE_WIDTH * A.PHONE_ASPECT))
    arr = as_array(out)
    green = (arr[:, :, 1] > 180) & (arr[:, :, 0] < 40) & (arr[:, :, 2] < 40)
    coverage = green.sum() / (w * h)
    assert 0.55 < coverage < 0.75  # ~62% for a square photo
    assert tuple(arr[2, w // 2]) == (18, 18, 22)  # dark frame
    assert A.phone_screenshot(img, 5).tobytes() == out.tobytes()


def test_combo_crops_then_recompresses() -> None:
    img = make_image(400, 300)
    out = A.ATTACKS_BY_NAME["combo_crop5_jpeg40_text"](img, 2)
    assert out.size == (360, 270)


def test_apply_attack_is_bytes_to_png_bytes_and_deterministic() -> None:
    data = jpeg_bytes(make_image())
    attack = A.ATTACKS_BY_NAME["mirror"]
    out = A.apply_attack(attack, data, 1)
    assert out[:8] == b"\x89PNG\r\n\x1a\n"
    assert out == A.apply_attack(attack, data, 1)


def test_attack_seed_is_stable() -> None:
    assert attack_seed("r0001", "mirror") == attack_seed("r0001", "mirror")
    assert attack_seed("r0001", "mirror") != attack_seed("r0002", "mirror")
    assert attack_seed("r0001", "mirror") == 1914553316  # crc32, not Python's salted hash


# --- evaluation arithmetic -------------------------------------------------------------------


class ScriptedMatcher:
    """Answers from a table keyed by the query's first byte; attacks are identity here."""

    name = "scripted"

    def __init__(self, answers: dict[bytes, list[str]]) -> None:
        self.answers = answers
        self.refs: list[str] = []

    def add_reference(self, ref_id: str, data: bytes) -> None:
        self.refs.append(ref_id)

    def query(self, data: bytes) -> list[str]:
        return self.answers.get(data, [])


IDENTITY = A.Attack("identity", "no change", lambda im, s: im)
FLIP = A.Attack("flip", "mirror", lambda im, s: A.mirror(im))


def tiny_png(colour: tuple[int, int, int], mirrored: bool = False) -> bytes:
    img = Image.new("RGB", (8, 8), colour)
    img.putpixel((0, 0), (255, 255, 255))
    if mirrored:
        img = A.mirror(img)
    return A.encode_png(img)


def test_eval_arithmetic_on_a_scripted_matcher() -> None:
    colours = [(i * 40, 0, 0) for i in range(4)]
    refs = [EvalImage(f"r{i}", "reference", tiny_png(c)) for i, c in enumerate(colours)]
    negs = [EvalImage(f"h{i}", "hard_negative", tiny_png((0, i * 50 + 10, 0))) for i in range(4)]
    negs += [EvalImage(f"d{i}", "distractor", tiny_png((0, 0, i * 20 + 5))) for i in range(6)]
    answers: dict[bytes, list[str]] = {}
    # identity: r0, r1, r2 find themselves; r3 finds only a wrong reference
    for i in range(3):
        answers[tiny_png(colours[i])] = [f"r{i}", "r3"]
    answers[tiny_png(colours[3])] = ["r0"]
    # flip: only r1 is found
    answers[tiny_png(colours[1], mirrored=True)] = ["r1"]
    # negatives: one hard negative and two distractors match something
    answers[negs[0].data] = ["r0"]
    answers[negs[4].data] = ["r2"]
    answers[negs[5].data] = ["r1", "r2"]
    matcher = ScriptedMatcher(answers)
    [res] = evaluate([matcher], refs, negs, [IDENTITY, FLIP], progress=False)
    assert matcher.refs == ["r0", "r1", "r2", "r3"]
    assert res.queries == {ORIGINAL: 4, "identity": 4, "flip": 4}
    assert res.recall("identity") == 0.75
    assert res.recall("flip") == 0.25
    assert res.recall(ORIGINAL) == 0.75
    assert res.overall_recall == 4 / 8  # the sanity row is not in the overall
    assert (res.negatives, res.false_matches) == (10, 3)
    assert res.false_match_rate == 0.3
    assert (res.hard_negatives, res.hard_false_matches) == (4, 1)
    assert res.hard_false_match_rate == 0.25
    assert sorted(res.false_match_ids) == ["d0", "d1", "h0"]
    assert res.negatives_by_kind == {"hard_negative/": [1, 4], "distractor/": [2, 6]}
    assert len(res.query_seconds) == 12 + 10
    table = markdown_table([res], [IDENTITY, FLIP])
    assert "| identity | 75.0% |" in table
    assert "| **recall, overall** | **50.0%** |" in table
    assert "30.0% (3/10)" in table and "25.0% (1/4)" in table


def test_naive_matcher_and_report_files(tmp_path: Path) -> None:
    img = make_image(320, 320)
    other = Image.new("RGB", (320, 320), "white")
    ImageDraw.Draw(other).ellipse((40, 40, 280, 280), fill=(0, 0, 0))
    refs = [EvalImage("r0", "reference", jpeg_bytes(img))]
    negs = [EvalImage("d0", "distractor", jpeg_bytes(other))]
    naive = NaiveMatcher()
    assert isinstance(naive, Matcher)
    attacks = [A.ATTACKS_BY_NAME["jpeg_q25"], A.ATTACKS_BY_NAME["mirror"]]
    [res] = evaluate([naive], refs, negs, attacks, progress=False)
    assert res.recall(ORIGINAL) == 1.0
    assert res.recall("jpeg_q25") == 1.0
    assert res.recall("mirror") == 0.0  # pHash is not flip-invariant
    assert res.false_matches == 0
    out = tmp_path / "rep"
    table = write_report([res], out, {"note": "SYNTHETIC test"}, attacks)
    assert (out / "image_eval.md").read_text().count("|") > 10
    assert (out / "image_eval.png").read_bytes()[:4] == b"\x89PNG"
    assert "naive_phash" in table

"""CatalogIndex: which stored variants a query view may match, and the candidates' order."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from detector import images
from detector.images import CLEAN, HashVariant
from detector.matching import CLEAN_MAX_DISTANCE, CatalogIndex


def _flip(value: int, n: int, start: int = 0) -> int:
    """``value`` with ``n`` bits flipped (bits start .. start+n-1)."""
    return value ^ sum(1 << (start + i) for i in range(n))


BASE = 0x0123_4567_89AB_CDEF


def test_clean_views_match_only_clean_variants_within_their_own_distance() -> None:
    index = CatalogIndex(default_distance=12)
    index.add("plain", "b", [("orig", BASE)])
    index.add("cleaned", "b", [("orig", _flip(BASE, 40)), (CLEAN, BASE)])
    # the clean view has the plain reference's value but may not match a plain variant
    found = index.search([HashVariant(CLEAN, BASE)])
    assert [(c.reference_id, c.variant, c.query_view) for c in found] == [("cleaned", CLEAN, CLEAN)]
    # nor may a plain view match a clean variant
    assert [c.reference_id for c in index.search([HashVariant("orig", BASE)])] == ["plain"]
    # clean to clean: at most CLEAN_MAX_DISTANCE, below the brand's 12
    near = HashVariant(CLEAN, _flip(BASE, CLEAN_MAX_DISTANCE))
    far = HashVariant(CLEAN, _flip(BASE, CLEAN_MAX_DISTANCE + 1))
    assert [c.distance for c in index.search([near])] == [CLEAN_MAX_DISTANCE]
    assert index.search([far]) == []
    # a brand's stricter distance applies to clean views too
    index.set_brand_distance("b", CLEAN_MAX_DISTANCE - 2)
    assert index.search([near]) == []


def test_ties_are_broken_by_every_view_not_by_name() -> None:
    """Look-alikes at the same best distance: the one nearer on the other views comes first."""
    index = CatalogIndex(default_distance=12)
    orig, cleaned = BASE, _flip(BASE, 64 - 20, 20)
    # "a-sibling" sorts first by name; both are 6 bits from the plain view
    index.add("a-sibling", "b", [("orig", _flip(orig, 6)), (CLEAN, _flip(cleaned, 9))])
    index.add("z-true", "b", [("orig", _flip(orig, 6, 10)), (CLEAN, _flip(cleaned, 2))])
    found = index.search([HashVariant("orig", orig), HashVariant(CLEAN, cleaned)])
    # z-true's best (2, clean) beats the sibling's 6 anyway; make the best distances equal
    assert found[0].reference_id == "z-true"
    index2 = CatalogIndex(default_distance=12)
    index2.add("a-sibling", "b", [("orig", _flip(orig, 4)), (CLEAN, _flip(cleaned, 12))])
    index2.add("z-true", "b", [("orig", _flip(orig, 4, 10)), (CLEAN, _flip(cleaned, 7))])
    found = index2.search([HashVariant("orig", orig), HashVariant(CLEAN, cleaned)])
    assert [(c.reference_id, c.distance) for c in found] == [("z-true", 4), ("a-sibling", 4)]
    # a view with nothing within the radius counts as radius + 1, never as 0
    index3 = CatalogIndex(default_distance=12)
    index3.add("a-sibling", "b", [("orig", _flip(orig, 4))])  # no clean variant near
    index3.add("z-true", "b", [("orig", _flip(orig, 4, 10)), (CLEAN, _flip(cleaned, 10))])
    found = index3.search([HashVariant("orig", orig), HashVariant(CLEAN, cleaned)])
    assert [c.reference_id for c in found] == ["z-true", "a-sibling"]


def _jpeg(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def test_clean_removes_thin_strokes_and_keeps_the_layout() -> None:
    """Thin caption strokes, dark and light, vanish from the cleaned frame; big shapes stay."""
    rng = np.random.default_rng(3)
    img = Image.new("RGB", (600, 600), (235, 235, 235))
    draw = ImageDraw.Draw(img)
    for _ in range(5):
        x, y = rng.integers(0, 420, size=2)
        s = int(rng.integers(120, 200))
        draw.rectangle((x, y, x + s, y + s), fill=tuple(int(v) for v in rng.integers(30, 200, 3)))
    captioned = img.copy()
    draw = ImageDraw.Draw(captioned)
    for i in range(14):  # strokes ~1.5 % of the side wide, across the whole photo
        x = 40 + 38 * i
        colour = (10, 10, 10) if i % 2 else (255, 255, 255)
        draw.line((x, 180, x + 20, 420), fill=colour, width=9)
    plain = images.decode(_jpeg(img)).frame
    painted = images.decode(_jpeg(captioned)).frame
    raw_change = float(np.abs(painted - plain).mean())
    clean_change = float(np.abs(images.clean(painted) - images.clean(plain)).mean())
    assert raw_change > 8.0
    assert clean_change < raw_change / 4
    # the big shapes are still there: the cleaned frame is far from a flat image
    assert float(images.clean(plain).std()) > 0.8 * float(plain.std())


def test_reference_and_query_hashes_include_the_clean_view() -> None:
    img = Image.new("RGB", (500, 500), (240, 240, 240))
    ImageDraw.Draw(img).ellipse((100, 120, 380, 400), fill=(40, 60, 160))
    decoded = images.decode(_jpeg(img), draft=False)
    ref = {h.variant: h.value for h in images.hash_reference(decoded)}
    query = {h.variant: h.value for h in images.hash_query(images.decode(_jpeg(img)))}
    # kept even when equal to a plain variant's hash (the two kinds never meet)
    assert CLEAN in ref and f"{CLEAN}+mirror" in ref and CLEAN in query
    assert images.hamming(ref[CLEAN], query[CLEAN]) <= 4


def _textured(seed: int, size: int = 600) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (235, 235, 235))
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = rng.integers(0, size - 60, size=2)
        s = int(rng.integers(30, 120))
        draw.ellipse((x, y, x + s, y + s), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return img


def test_a_caption_across_the_middle_is_found_by_the_top_and_bottom_strips() -> None:
    index = CatalogIndex(default_distance=12)
    for seed in range(8):
        decoded = images.decode(_jpeg(_textured(seed)), draft=False)
        index.add(f"r{seed}", "b", [(h.variant, h.value) for h in images.hash_reference(decoded)])
    captioned = _textured(3)
    # a bold black-and-white banner over the middle third, too much for the whole-frame views
    draw = ImageDraw.Draw(captioned)
    for x in range(0, 600, 160):
        draw.rectangle((x, 202, x + 79, 398), fill=(0, 0, 0))
        draw.rectangle((x + 80, 202, x + 159, 398), fill=(255, 255, 255))
    views = images.hash_query(images.decode(_jpeg(captioned)))
    whole = [v for v in views if images.view_kind(v.variant) == ""]
    assert all(c.reference_id != "r3" for c in index.search(whole))  # beyond the plain views
    found = index.search(views)
    assert found and found[0].reference_id == "r3"
    assert found[0].query_view in ("top", "bottom") and found[0].variant == found[0].query_view
    # mirrored, the strips match the reference's mirrored strips
    mirrored = images.hash_query(
        images.decode(_jpeg(captioned.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    )
    found = index.search(mirrored)
    assert found and found[0].reference_id == "r3" and found[0].variant.endswith("+mirror")


def test_plain_strips_are_not_hashed_and_kinds_never_mix() -> None:
    img = Image.new("RGB", (600, 600), (255, 255, 255))
    ImageDraw.Draw(img).rectangle((380, 380, 560, 560), fill=(20, 40, 160))  # bottom right only
    decoded = images.decode(_jpeg(img), draft=False)
    strips = {h.variant for h in images.strip_hashes(decoded.frame)}
    assert strips <= {"bottom", "right"} and "top" not in strips and "left" not in strips
    assert images.view_kind("top+mirror") == "top" and images.view_kind("crop10-tl+mirror") == ""
    index = CatalogIndex(default_distance=12)
    index.add("r", "b", [("top", BASE)])
    assert index.search([HashVariant("bottom", BASE)]) == []
    assert index.search([HashVariant("orig", BASE)]) == []
    assert [c.variant for c in index.search([HashVariant("top", BASE)])] == ["top"]
    from detector.matching import STRIP_MAX_DISTANCE

    assert index.search([HashVariant("top", _flip(BASE, STRIP_MAX_DISTANCE + 1))]) == []

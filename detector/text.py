"""Text signals: normalisation with an offset map, brand spans, cue spans and text features.

Everything here is pure (standard library, rapidfuzz, confusable_homoglyphs) and builds its tables
lazily: nothing is loaded at import time.

* :func:`normalize` folds a listing's text (NFKC, case, accents, homoglyphs inside Latin words,
  leetspeak inside words, letters split by separators, styled/enclosed letters) and keeps, for
  every character of the folded text, the range of the original string it came from.
* :class:`BrandMatcher` finds brand names and aliases (exact, obfuscated, fuzzy).
* :class:`CueMatcher` finds counterfeit cues, genuine cues and negated cues from the multilingual
  lexicon in ``detector/data/cues.json``.
* :func:`text_features` turns the spans of a title and a description into counts for the
  classifier.

All spans carry offsets into the ORIGINAL text, so ``text[span.start:span.end] == span.text``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from itertools import compress, pairwise, product
from typing import Any, Final, Literal

from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import extractOne

__all__ = [
    "COUNTERFEIT_CATEGORIES",
    "GENUINE_CATEGORIES",
    "TEXT_FEATURE_NAMES",
    "BrandMatcher",
    "BrandTerms",
    "Cue",
    "CueMatcher",
    "ListingText",
    "NormalizedText",
    "Span",
    "default_cue_matcher",
    "find_spans",
    "normalize",
    "text_features",
]

# --------------------------------------------------------------------------------------------
# Flags kept per normalised character: how it was obtained from the original text.

STYLED: Final = 1  # mathematical / enclosed / emoji / small-capital letter
HOMOGLYPH: Final = 2  # Cyrillic/Greek look-alike folded to Latin
LEET: Final = 4  # digit or symbol read as a letter
SPLIT: Final = 8  # letter that was part of "G.U.C.C.I" / "g u c c i"
WIDTH: Final = 16  # full-width form (ordinary in CJK typing, so not an obfuscation)
OBFUSCATION: Final = STYLED | HOMOGLYPH | LEET | SPLIT

# Scripts written without spaces between words: names are matched as substrings there.
_CJK_RANGES: Final = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1100-\u11ff"  # Hangul Jamo
    "\u1780-\u17ff"  # Khmer
    "\u2e80-\u2fdf"  # CJK radicals
    "\u3005-\u3007\u3021-\u3029"
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3130-\u318f"  # Hangul compatibility Jamo
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility
    "\U00020000-\U0002fa1f"
)
_CJK_CHAR: Final = re.compile(f"[{_CJK_RANGES}]")
_WORD_CLASS: Final = f"[^\\W_{_CJK_RANGES}]"  # a letter/digit of a space-separated script
_TOKEN_RE: Final = re.compile(f"{_WORD_CLASS}+")
_LEET_TOKEN_RE: Final = re.compile(f"(?:{_WORD_CLASS}|[@$])+")
_SINGLES_RE: Final = re.compile(
    r"(?<![^\W_])(?<![@$])(?:[^\W_]|[@$])(?![^\W_@$])"
    r"(?:[ .\-_*·•\u2022\u30fb]{1,3}(?:[^\W_]|[@$])(?![^\W_@$]))+"
)
_LEET_PAIR: Final = re.compile(r"[a-z][013457@$]|[013457@$][a-z]")
_NOT_LEET: Final = bytes(v for v in range(256) if not v & LEET)
_NOT_OBFUSCATED: Final = bytes(v for v in range(256) if not v & OBFUSCATION)
_CAMEL: Final = re.compile(r"[a-z][A-Z]|[A-Z]{2}[a-z]")
_TIGHT: Final = "-._*·/|'"
_SPACE_RUN: Final = re.compile(r"\s{2,}|[^\S ]")

_LEET: Final[Mapping[str, str]] = {
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "@": "a",
    "$": "s",
}
_LEET_ALT: Final[Mapping[str, str]] = {"1": "l"}
_ZERO_WIDTH: Final = frozenset("\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\ufeff")
_KEEP_AS_IS: Final = frozenset("™℠№℡")  # NFKC would glue letters onto the preceding word
_MANUAL_LATIN: Final[Mapping[str, str]] = {
    "ø": "o",
    "ł": "l",
    "đ": "d",
    "ħ": "h",
    "ı": "i",
    "ĸ": "k",
    "æ": "ae",
    "œ": "oe",
    "ŀ": "l",
}
# Confusables that the Unicode table maps to a non-ASCII letter (or to the wrong case).
_HOMOGLYPH_EXTRA: Final[Mapping[str, str]] = {
    "І": "I",
    "Ӏ": "I",
    "Ι": "I",
    "к": "k",
    "κ": "k",
    "н": "H",
    "т": "T",
    "в": "B",
    "м": "M",
    "τ": "t",
    "χ": "x",
    "η": "n",
    "ѕ": "s",
    "ԁ": "d",
    "ո": "n",
    "օ": "o",
    "ս": "u",
    "ց": "g",
    "հ": "h",
}
_HOMOGLYPH_SCRIPTS: Final = ("CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE")


# --------------------------------------------------------------------------------------------
# Lazily built character tables.


@lru_cache(maxsize=1)
def _style_map() -> dict[str, str]:
    """Letters NFKC leaves alone: negative circled/squared, regional indicators, small capitals."""
    table: dict[str, str] = {}
    for base in (0x1F130, 0x1F150, 0x1F170, 0x1F1E6):  # squared, neg. circled, neg. squared, flags
        for k in range(26):
            table[chr(base + k)] = chr(ord("A") + k)
    for lo, hi in ((0x0250, 0x02AF), (0x1D00, 0x1D7F), (0xA730, 0xA7FF)):
        for cp in range(lo, hi + 1):
            name = unicodedata.name(chr(cp), "")
            if name.startswith("LATIN LETTER SMALL CAPITAL ") and len(name) == 28:
                table[chr(cp)] = name[-1].lower()
    return table


@lru_cache(maxsize=1)
def _homoglyph_map() -> dict[str, str]:
    """Cyrillic/Greek/Armenian/Cherokee letter -> the ASCII letter it imitates (case kept)."""
    from confusable_homoglyphs import confusables  # loads a 1 MB JSON: only on first use

    data: Mapping[str, list[dict[str, str]]] = confusables.confusables_data
    small_caps = _style_map()
    table: dict[str, str] = {}
    for char, options in data.items():
        if len(char) != 1 or not char.isalpha():
            continue
        if unicodedata.name(char, "").split(" ", 1)[0] not in _HOMOGLYPH_SCRIPTS:
            continue
        for option in options:
            target = option["c"]
            if len(target) != 1:
                continue
            if target.isascii() and target.isalpha():
                table[char] = target
                break
            folded = small_caps.get(target) or _MANUAL_LATIN.get(target)
            if folded is not None and len(folded) == 1:
                table[char] = folded
                break
    table.update(_HOMOGLYPH_EXTRA)
    return table


@lru_cache(maxsize=16384)
def _fold_cluster(cluster: str) -> tuple[str, int]:
    """NFKC and style folding of one base character with its combining marks."""
    base = cluster[0]
    if base in _ZERO_WIDTH or unicodedata.category(base) == "Cf" or 0xFE00 <= ord(base) <= 0xFE0F:
        return "", 0
    styled = _style_map().get(base)
    if styled is not None:
        return styled, STYLED
    if base in _KEEP_AS_IS:
        return cluster, 0
    out = unicodedata.normalize("NFKC", cluster)
    if out == cluster:
        return cluster, 0
    tag = unicodedata.decomposition(base).split(" ", 1)[0]
    if len(out) == 3 and out[0] == "(" and out[2] == ")" and out[1].isalnum():
        return out[1], STYLED  # parenthesised letter (g)
    if tag == "<wide>":
        return out, WIDTH
    if tag in ("<font>", "<circle>", "<square>", "<super>", "<sub>", "<small>") and out.isalnum():
        return out, STYLED
    return out, 0


@lru_cache(maxsize=16384)
def _fold_char(char: str) -> tuple[str, int] | None:
    """`_fold_cluster` of a lone character; None for a combining mark (needs its base)."""
    if unicodedata.combining(char):
        return None
    return _fold_cluster(char)


def _fold_clusters(text: str, buf: _Buffer) -> None:
    i, n = 0, len(text)
    combining = unicodedata.combining
    while i < n:
        j = i + 1
        while j < n and combining(text[j]):
            j += 1
        out, flag = _fold_cluster(text[i:j])
        for ch in out:
            buf.append(ch, i, j, flag)
        i = j


@lru_cache(maxsize=16384)
def _case_fold(char: str) -> str:
    """Case fold and strip accents from Latin letters (é -> e); other scripts keep theirs."""
    out: list[str] = []
    for c in char.casefold():
        manual = _MANUAL_LATIN.get(c)
        if manual is not None:
            out.append(manual)
            continue
        if c.isascii():
            out.append(c)
            continue
        decomposed = unicodedata.normalize("NFD", c)
        if decomposed[0].isascii() and decomposed[0].isalpha():
            out.append(decomposed[0])
        else:
            out.append(c)
    return "".join(out)


@lru_cache(maxsize=16384)
def _letter_class(char: str) -> int:
    """0 = not a letter, 1 = Latin letter, 2 = homoglyph-foldable, 3 = other letter."""
    if not char.isalpha():
        return 0
    if char.isascii():
        return 1
    if char in _homoglyph_map():
        return 2
    if unicodedata.name(char, "").startswith("LATIN"):
        return 1
    return 3


# --------------------------------------------------------------------------------------------
# Normalisation.


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """Folded text with a map back to the original string.

    Attributes
    ----------
    original : str
        The text as given.
    text : str
        The folded text.
    starts, ends : tuple of int
        ``original[starts[i]:ends[i]]`` is where ``text[i]`` came from.
    flags : bytes
        Per folded character, a bit set of how it was obtained (``STYLED``, ``HOMOGLYPH``,
        ``LEET``, ``SPLIT``, ``WIDTH``).
    """

    original: str
    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    flags: bytes

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a ``[start, end)`` range of the folded text to the original text."""
        if end <= start:
            pos = self.starts[start] if start < len(self.starts) else len(self.original)
            return pos, pos
        return self.starts[start], self.ends[end - 1]

    def original_slice(self, start: int, end: int) -> str:
        """The original substring behind folded ``text[start:end]``."""
        a, b = self.to_original(start, end)
        return self.original[a:b]

    def flags_in(self, start: int, end: int) -> int:
        """OR of the flags of folded characters ``start..end``."""
        acc = 0
        for f in self.flags[start:end]:
            acc |= f
        return acc


class _Buffer:
    """Parallel lists: one folded character, its original range and its flags."""

    __slots__ = ("chars", "ends", "flags", "starts")

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.flags: list[int] = []

    def append(self, char: str, start: int, end: int, flag: int) -> None:
        self.chars.append(char)
        self.starts.append(start)
        self.ends.append(end)
        self.flags.append(flag)

    def keep(self, keep: Sequence[bool]) -> _Buffer:
        out = _Buffer()
        out.chars = list(compress(self.chars, keep))
        out.starts = list(compress(self.starts, keep))
        out.ends = list(compress(self.ends, keep))
        out.flags = list(compress(self.flags, keep))
        return out


def normalize(text: str) -> NormalizedText:
    """Fold ``text`` for matching and keep a map back to the original offsets.

    Steps: NFKC per grapheme (full-width, mathematical and enclosed letters), emoji letters and
    small capitals, zero-width characters dropped; single letters split by spaces, dots, dashes,
    underscores or stars joined ("G.U.C.C.I" -> "GUCCI"); Cyrillic/Greek look-alikes folded to
    Latin inside words that also hold Latin letters (real Russian or Greek words are left alone);
    case folding and accent stripping of Latin letters; leetspeak read inside words that mix
    letters with 0 1 3 4 5 7 @ $ ("L0uis" -> "louis"; "iPhone 15" keeps its number); runs of
    whitespace collapsed to one space (or one newline). CJK, Thai and other scripts pass through.
    """
    buf = _Buffer()
    n = len(text)
    if text.isascii():
        buf.chars = list(text)
        buf.starts = list(range(n))
        buf.ends = list(range(1, n + 1))
        buf.flags = [0] * n
    else:
        folded = [_fold_char(c) for c in text]
        chars = [f[0] for f in folded if f is not None] if None not in folded else []
        if len(chars) == n and list(map(len, chars)).count(1) == n:  # one char in, one out
            buf.chars = chars
            buf.starts = list(range(n))
            buf.ends = list(range(1, n + 1))
            buf.flags = [f[1] for f in folded if f is not None]
        else:
            _fold_clusters(text, buf)

    buf = _join_singles(buf)
    if not "".join(buf.chars).isascii():
        _fold_homoglyphs(buf)
        buf = _fold_case(buf)
    else:
        buf.chars = list("".join(buf.chars).lower())
    _fold_leet(buf)
    buf = _collapse_space(buf)
    return NormalizedText(
        original=text,
        text="".join(buf.chars),
        starts=tuple(buf.starts),
        ends=tuple(buf.ends),
        flags=bytes(buf.flags),
    )


def _joinable(char: str) -> bool:
    return char in _LEET or _letter_class(char) in (1, 2)


def _join_singles(buf: _Buffer) -> _Buffer:
    """Join letters split by separators: "G.U.C.C.I", "C-H-A-N-E-L", "g u c c i", "L V"."""
    s = "".join(buf.chars)
    if len(s) != len(buf.chars):  # pragma: no cover - every entry is one character
        raise AssertionError("buffer holds multi-character entries")
    drop: set[int] = set()
    for m in _SINGLES_RE.finditer(s):
        # positions of the single characters inside the run, split where one is not joinable
        runs: list[list[int]] = [[]]
        for pos in range(m.start(), m.end()):
            ch = s[pos]
            if ch.isalnum() or ch in "@$":
                if _joinable(ch):
                    runs[-1].append(pos)
                else:
                    runs.append([])
        for run in runs:
            if _accept_run(s, run):
                for a, b in pairwise(run):
                    drop.update(range(a + 1, b))
                for pos in run:
                    buf.flags[pos] |= SPLIT
    if not drop:
        return buf
    return buf.keep([k not in drop for k in range(len(s))])


def _accept_run(s: str, run: Sequence[int]) -> bool:
    if len(run) < 2:
        return False
    letters = sum(1 for p in run if s[p].isalpha())
    others = len(run) - letters
    if letters < 2 or (others and (letters < 3 or others * 2 > letters)):
        return False
    spaced = all(s[a + 1 : b].isspace() for a, b in pairwise(run))
    if spaced and len(run) == 2:
        return all(s[p].isupper() for p in run)  # "L V" but not "a T"
    return True


def _fold_homoglyphs(buf: _Buffer) -> None:
    """Fold look-alikes inside words that are Latin with a few foreign letters ("Guссi")."""
    s = "".join(buf.chars)
    table = _homoglyph_map()
    if table.keys().isdisjoint(s):  # nothing foldable: skip the per-character scan
        return
    latin_total = 0
    foreign_real = False
    for ch in s:
        cls = _letter_class(ch)
        if cls == 1:
            latin_total += 1
        elif cls == 3 and not _CJK_CHAR.match(ch):
            foreign_real = True
    for m in _TOKEN_RE.finditer(s):
        word = m.group()
        if word.isascii():
            continue
        classes = [_letter_class(c) for c in word]
        if 3 in classes or 2 not in classes:
            continue
        latin = classes.count(1)
        whole_word_ok = latin == 0 and not foreign_real and latin_total > 0
        if latin == 0 and not whole_word_ok:
            continue
        for k, cls in enumerate(classes):
            if cls == 2:
                pos = m.start() + k
                buf.chars[pos] = table[buf.chars[pos]]
                buf.flags[pos] |= HOMOGLYPH


def _fold_case(buf: _Buffer) -> _Buffer:
    lowered = [_case_fold(c) for c in buf.chars]
    joined = "".join(lowered)
    if len(joined) == len(lowered) and not any(map(unicodedata.combining, joined)):
        buf.chars = lowered
        return buf
    out = _Buffer()
    prev_latin = False
    for c, s, e, f in zip(lowered, buf.starts, buf.ends, buf.flags, strict=True):
        if prev_latin and len(c) == 1 and unicodedata.combining(c):
            out.ends[-1] = max(out.ends[-1], e)  # stray accent on a Latin letter: drop it
            continue
        for ch in c:
            out.append(ch, s, e, f)
        prev_latin = bool(c) and c[-1].isascii() and c[-1].isalpha()
    return out


def _fold_leet(buf: _Buffer) -> None:
    """Read 0 1 3 4 5 7 @ $ as letters inside words that mix them with letters."""
    s = "".join(buf.chars)
    if not _LEET_PAIR.search(s):
        return
    for m in _LEET_TOKEN_RE.finditer(s):
        word = m.group()
        if word.isalpha() or not any(c in _LEET for c in word):
            continue
        letters = sum(1 for c in word if c.isalpha())
        if letters < 3:
            continue
        convert: list[int] = []
        interior = False
        k, n = 0, len(word)
        while k < n:
            if word[k].isalpha():
                k += 1
                continue
            j = k
            while j < n and not word[j].isalpha():
                j += 1
            chunk = word[k:j]
            leet_chunk = all(c in _LEET for c in chunk)
            if leet_chunk and k > 0 and j < n and len(chunk) <= 2:
                convert.extend(range(k, j))
                interior = True
            elif (
                leet_chunk
                and len(chunk) == 1
                and (k == 0 or j == n)
                and (chunk == "$" or (chunk != "@" and k > 0))
            ):
                convert.append(k)  # "$upreme", "Hermè$", "Pr4d4" (kept only if interior too)
            k = j
        edge_only = [p for p in convert if p == 0 or p == n - 1]
        if not interior:
            convert = [p for p in edge_only if word[p] == "$"]
        if not convert or len(convert) > letters:
            continue
        for p in convert:
            pos = m.start() + p
            buf.chars[pos] = _LEET[buf.chars[pos]]
            buf.flags[pos] |= LEET


def _collapse_space(buf: _Buffer) -> _Buffer:
    s = "".join(buf.chars)
    if not _SPACE_RUN.search(s):
        return buf
    keep = [True] * len(s)
    for m in re.finditer(r"\s+", s):
        a, b = m.start(), m.end()
        buf.chars[a] = "\n" if "\n" in m.group() else " "
        for p in range(a + 1, b):
            keep[p] = False
    return buf.keep(keep)


# --------------------------------------------------------------------------------------------
# Spans.


@dataclass(frozen=True, slots=True)
class Span:
    """A finding in a text, with offsets into the ORIGINAL string.

    Attributes
    ----------
    kind : str
        ``"brand"``, ``"cue"`` (points to a counterfeit), ``"genuine_cue"`` or ``"negated_cue"``.
    start, end : int
        ``original[start:end] == text``.
    text : str
        The original substring.
    label : str
        Brand id for brands, cue id for cues.
    detail : str
        Brands: ``"exact"``, ``"obfuscated"``, ``"fuzzy:N"``, ``"obfuscated+fuzzy:N"`` or
        ``"hashtag"``. Cues: the cue's category.
    """

    kind: str
    start: int
    end: int
    text: str
    label: str
    detail: str


def _make_span(nt: NormalizedText, kind: str, a: int, b: int, label: str, detail: str) -> Span:
    start, end = nt.to_original(a, b)
    return Span(kind, start, end, nt.original[start:end], label, detail)


def _as_normalized(text: str | NormalizedText) -> NormalizedText:
    return text if isinstance(text, NormalizedText) else normalize(text)


def _is_word_char(ch: str) -> bool:
    return (ch.isalnum() or unicodedata.category(ch) == "Mn") and not _CJK_CHAR.match(ch)


# --------------------------------------------------------------------------------------------
# Brands.


@dataclass(frozen=True, slots=True)
class BrandTerms:
    """A brand and the names it is written as (name, aliases, non-Latin aliases)."""

    brand_id: str
    names: Sequence[str]


@dataclass(frozen=True, slots=True)
class _Name:
    brand_id: str
    tokens: tuple[str, ...]
    inherent: int  # obfuscation flags the name's own normalisation produced ("A.P.C.")
    edits: int = 0  # fuzzy edits allowed (single-token names)


_FUZZY_CACHE_SIZE: Final = 50_000


def _max_edits(length: int) -> int:
    if length < 5:
        return 0
    return 1 if length <= 8 else 2


@lru_cache(maxsize=1)
def _default_fuzzy_exclude() -> frozenset[str]:
    words: set[str] = set()
    raw = resources.files("detector").joinpath("data/fuzzy_stopwords.txt").read_text("utf-8")
    for line in raw.splitlines():
        line = line.split("#", 1)[0]
        words.update(w.lower() for w in line.split())
    lexicon = _load_lexicon(None)
    for entry in lexicon["cues"]:
        for patterns in entry["patterns"].values():
            for p in patterns:
                words.update(_TOKEN_RE.findall(normalize(p).text))
    return frozenset(words)


class BrandMatcher:
    """Find brand mentions: exact, obfuscated and fuzzy.

    Parameters
    ----------
    brands : sequence of BrandTerms
        Brands with their names and aliases. Latin-script names match on word boundaries
        ("Applewood" is not Apple); names in CJK, Thai and similar scripts match as substrings.
    fuzzy_exclude : iterable of str, optional
        Words never fuzzy-matched ("channel" is not Chanel). Defaults to the list in
        ``detector/data/fuzzy_stopwords.txt`` plus the words of the cue lexicon.

    Notes
    -----
    Build once per brand set and reuse: construction normalises every name and builds the indexes.
    Fuzzy matching applies only to tokens and names of 5 letters or more: 1 edit up to 8 letters,
    2 edits from 9.
    """

    def __init__(
        self, brands: Sequence[BrandTerms], *, fuzzy_exclude: Iterable[str] | None = None
    ) -> None:
        self.brands = tuple(brands)
        self._exclude = (
            _default_fuzzy_exclude()
            if fuzzy_exclude is None
            else frozenset(w.lower() for w in fuzzy_exclude)
        )
        self._by_first: dict[str, list[_Name]] = {}
        self._single: dict[str, _Name] = {}
        self._part_of: dict[str, list[tuple[_Name, int]]] = {}
        self._cjk: dict[str, list[tuple[str, str]]] = {}
        self._fuzzy_first: dict[tuple[str, int], tuple[list[str], list[_Name]]] = {}
        self._fuzzy_last: dict[tuple[str, int], tuple[list[str], list[_Name]]] = {}
        self._single_lengths: list[int] = []
        self._fuzzy_cache: dict[str, tuple[int, _Name] | None] = {}
        for brand in self.brands:
            for name in brand.names:
                self._add_name(brand.brand_id, name)
        for names in self._by_first.values():
            names.sort(key=lambda nm: -len(nm.tokens))
        for aliases in self._cjk.values():
            aliases.sort(key=lambda a: -len(a[0]))
        self._single_lengths = sorted({len(t) for t in self._single}, reverse=True)
        for token, nm in self._single.items():
            k = _max_edits(len(token))
            if k == 0 or not token.isalpha():
                continue
            for length in range(len(token) - k, len(token) + k + 1):
                for table, key in (
                    (self._fuzzy_first, (token[0], length)),
                    (self._fuzzy_last, (token[-1], length)),
                ):
                    bucket = table.setdefault(key, ([], []))
                    bucket[0].append(token)
                    bucket[1].append(nm)

    def _add_name(self, brand_id: str, name: str) -> None:
        nt = normalize(name)
        folded = nt.text.strip()
        if not folded:
            return
        if _CJK_CHAR.search(folded):
            self._cjk.setdefault(folded[0], []).append((folded, brand_id))
            return
        tokens = tuple(_TOKEN_RE.findall(folded))
        if not tokens:
            return
        inherent = nt.flags_in(0, len(nt.text)) & OBFUSCATION
        nm = _Name(brand_id, tokens, inherent, _max_edits(len(tokens[0])))
        self._by_first.setdefault(tokens[0], []).append(nm)
        if len(tokens) == 1:
            self._single.setdefault(tokens[0], nm)
        else:
            joined = "".join(tokens)
            if len(joined) >= 5:
                self._single.setdefault(
                    joined, _Name(brand_id, (joined,), inherent, _max_edits(len(joined)))
                )
            for pos, tok in enumerate(tokens):
                if len(tok) >= 3:
                    self._part_of.setdefault(tok, []).append((nm, pos))

    # ---------------------------------------------------------------------------------------
    def find(self, text: str | NormalizedText) -> list[Span]:
        """Brand spans in ``text`` (a string or an already normalised text), in text order."""
        nt = _as_normalized(text)
        s = nt.text
        toks = [(m.start(), m.end(), m.group()) for m in _TOKEN_RE.finditer(s)]
        spans: list[tuple[int, int, str, str]] = []  # folded start, end, brand, detail
        last_end = 0
        i = 0
        has_leet = bool(nt.flags.translate(None, _NOT_LEET))
        # compounds ("GucciBag", "#guccibag") need a hashtag or a case change somewhere
        has_compound = "#" in s or bool(_CAMEL.search(nt.original))
        while i < len(toks):
            hit = self._match_at(nt, toks, i, last_end, has_leet, has_compound)
            if hit is not None:
                a, b, brand_id, detail, consumed = hit
                spans.append((a, b, brand_id, detail))
                last_end = b
                i += consumed
            else:
                i += 1
        if self._cjk and not s.isascii():
            spans.extend(self._find_cjk(s))
            spans.sort()
        return [_make_span(nt, "brand", a, b, bid, det) for a, b, bid, det in spans]

    def _detail(self, nt: NormalizedText, a: int, b: int, nm: _Name, base: str) -> str:
        obfuscated = nt.flags_in(a, b) & OBFUSCATION & ~nm.inherent
        if base == "exact":
            return "obfuscated" if obfuscated else "exact"
        return f"obfuscated+{base}" if obfuscated else base

    def _match_at(
        self,
        nt: NormalizedText,
        toks: Sequence[tuple[int, int, str]],
        i: int,
        last_end: int,
        has_leet: bool,
        has_compound: bool = True,
    ) -> tuple[int, int, str, str, int] | None:
        s = nt.text
        start, end, tok = toks[i]
        ntoks = len(toks)
        # 1. exact names (multi-token names first)
        for nm in self._by_first.get(tok, ()):
            k = len(nm.tokens)
            if i + k > ntoks:
                continue
            if all(toks[i + q][2] == nm.tokens[q] for q in range(1, k)) and all(
                _small_gap(s, toks[i + q - 1][1], toks[i + q][0]) for q in range(1, k)
            ):
                b = toks[i + k - 1][1]
                return start, b, nm.brand_id, self._detail(nt, start, b, nm, "exact"), k
        # 2. a name split by intra-word punctuation: "Bur-berry", "Gu.cci"
        if i + 1 < ntoks and toks[i + 1][0] - end == 1 and s[end] in _TIGHT:
            joined = tok
            for q in range(1, 3):
                if i + q >= ntoks or not _tight_gap(s, toks[i + q - 1][1], toks[i + q][0]):
                    break
                joined += toks[i + q][2]
                nm_j = self._single.get(joined)
                if nm_j is not None:
                    return start, toks[i + q][1], nm_j.brand_id, "obfuscated", q + 1
        # 3. leetspeak the normaliser left alone ("D10R", "Nik3") or read as i ("Ca1vin")
        if (not tok.isalpha() and not tok.isdigit()) or (
            has_leet and nt.flags_in(start, end) & LEET
        ):
            for variant in _leet_variants(nt, start, tok):
                nm_v = self._single.get(variant)
                if nm_v is not None:
                    return start, end, nm_v.brand_id, "obfuscated", 1
        # 4. camelCase / hashtag compounds: "GucciBag", "#guccibag"
        if (
            has_compound
            and len(tok) >= 4
            and (
                (start > 0 and s[start - 1] == "#")
                or _CAMEL.search(nt.original, nt.starts[start], nt.ends[end - 1])
            )
        ):
            hit = self._match_compound(nt, start, tok)
            if hit is not None:
                return hit
        # 5. fuzzy: multi-token names anchored on one exact word, then single names
        if tok in self._part_of:
            hit = self._match_fuzzy_multi(nt, toks, i, last_end)
            if hit is not None:
                return hit
        if len(tok) >= 5 and tok not in self._exclude and tok.isalpha():
            fuzzy = self._fuzzy_single(tok)
            if fuzzy is not None:
                best_d, best = fuzzy
                detail = self._detail(nt, start, end, best, f"fuzzy:{best_d}")
                return start, end, best.brand_id, detail, 1
        return None

    def _fuzzy_single(self, tok: str) -> tuple[int, _Name] | None:
        """Closest single-token name within its edit budget; memoised (words repeat a lot)."""
        cache = self._fuzzy_cache
        try:
            return cache[tok]
        except KeyError:  # (not "in" then "[]": another thread may clear the cache between)
            pass
        n = len(tok)
        best_d, best = 9, None
        for bucket in (self._fuzzy_first.get((tok[0], n)), self._fuzzy_last.get((tok[-1], n))):
            if bucket is None:
                continue
            found = extractOne(tok, bucket[0], scorer=Levenshtein.distance, score_cutoff=2)
            if found is not None:
                d, nm = int(found[1]), bucket[1][found[2]]
                if 0 < d <= nm.edits and d < best_d:
                    best_d, best = d, nm
        result = None if best is None else (best_d, best)
        if len(cache) >= _FUZZY_CACHE_SIZE:
            cache.clear()
        cache[tok] = result
        return result

    def _match_compound(
        self, nt: NormalizedText, start: int, tok: str
    ) -> tuple[int, int, str, str, int] | None:
        n = len(tok)
        if n < 4:
            return None
        s = nt.text
        if start > 0 and s[start - 1] == "#":
            for length in self._single_lengths:
                if 4 <= length < n:
                    nm = self._single.get(tok[:length])
                    if nm is not None:
                        return start, start + length, nm.brand_id, "hashtag", 1
        orig = [nt.original[nt.starts[start + p]] for p in range(n)]
        cuts = {0, n}
        for p in range(1, n):
            if orig[p].isupper() and orig[p - 1].islower():
                cuts.add(p)
            elif orig[p].islower() and orig[p - 1].isupper() and p >= 2 and orig[p - 2].isupper():
                cuts.update((p, p - 1))
        if len(cuts) == 2:
            return None
        ordered = sorted(cuts)
        for ai, a in enumerate(ordered):
            for b in ordered[ai + 1 :]:
                if (a, b) == (0, n) or b - a < 2:
                    continue
                nm = self._single.get(tok[a:b])
                if nm is not None:
                    sa, sb = start + a, start + b
                    return sa, sb, nm.brand_id, self._detail(nt, sa, sb, nm, "exact"), 1
        return None

    def _match_fuzzy_multi(
        self, nt: NormalizedText, toks: Sequence[tuple[int, int, str]], i: int, last_end: int
    ) -> tuple[int, int, str, str, int] | None:
        s = nt.text
        best: tuple[int, int, int, _Name] | None = None  # distance, first, last token, name
        for nm, pos in self._part_of.get(toks[i][2], ()):
            first, last = i - pos, i - pos + len(nm.tokens) - 1
            if first < 0 or last >= len(toks) or toks[first][0] < last_end:
                continue
            if not all(_small_gap(s, toks[q][1], toks[q + 1][0]) for q in range(first, last)):
                continue
            window = " ".join(toks[q][2] for q in range(first, last + 1))
            target = " ".join(nm.tokens)
            k = _max_edits(len(target) - len(nm.tokens) + 1)
            if k == 0:
                continue
            d = int(Levenshtein.distance(window, target, score_cutoff=k))
            if 0 < d <= k and (best is None or d < best[0]):
                best = (d, first, last, nm)
        if best is None:
            return None
        d, first, last, nm = best
        a, b = toks[first][0], toks[last][1]
        return a, b, nm.brand_id, self._detail(nt, a, b, nm, f"fuzzy:{d}"), last - i + 1

    def _find_cjk(self, s: str) -> list[tuple[int, int, str, str]]:
        out: list[tuple[int, int, str, str]] = []
        pos, n = 0, len(s)
        while pos < n:
            cands = self._cjk.get(s[pos])
            matched = False
            if cands:
                for alias, brand_id in cands:
                    end = pos + len(alias)
                    if not s.startswith(alias, pos):
                        continue
                    if _is_word_char(alias[0]) and pos > 0 and _is_word_char(s[pos - 1]):
                        continue
                    if _is_word_char(alias[-1]) and end < n and _is_word_char(s[end]):
                        continue
                    out.append((pos, end, brand_id, "exact"))
                    pos = end
                    matched = True
                    break
            if not matched:
                pos += 1
        return out


def _small_gap(s: str, a: int, b: int) -> bool:
    """Tokens of one multi-word name: a short gap of spaces or joining punctuation."""
    return b - a <= 3 and all(c in " -_.&'+/·" for c in s[a:b])


def _tight_gap(s: str, a: int, b: int) -> bool:
    """A single punctuation mark splitting one word: "Bur-berry", "Gu.cci", "Ch*nel"."""
    return b - a == 1 and s[a] in _TIGHT


def _leet_variants(nt: NormalizedText, start: int, tok: str) -> list[str]:
    options: list[str] = []
    for p, ch in enumerate(tok):
        if ch.isalpha():
            orig = nt.original[nt.starts[start + p]]
            alt = _LEET_ALT.get(orig) if nt.flags[start + p] & LEET else None
            options.append(ch + alt if alt else ch)
        elif ch in _LEET:
            options.append(_LEET[ch] + _LEET_ALT.get(ch, ""))
        else:
            return []
    if sum(len(o) > 1 for o in options) > 4:
        return []
    return ["".join(v) for v in product(*options)]


# --------------------------------------------------------------------------------------------
# Cues.

CueKind = Literal["cue", "genuine"]
COUNTERFEIT_CATEGORIES: Final = ("replica", "grade", "factory", "packaging", "dupe", "contact")
GENUINE_CATEGORIES: Final = ("authentic", "receipt", "used", "accessory", "authorized")


@dataclass(frozen=True, slots=True)
class Cue:
    """One lexicon entry: an id, whether it points to a counterfeit or a genuine listing, its
    category and its weight (``strong`` when weight >= 0.7)."""

    id: str
    kind: CueKind
    category: str
    weight: float
    reject_before: re.Pattern[str] | None = None
    reject_after: re.Pattern[str] | None = None

    @property
    def strong(self) -> bool:
        return self.weight >= 0.7


def _load_lexicon(path: str | None) -> dict[str, Any]:
    if path is None:
        raw = resources.files("detector").joinpath("data/cues.json").read_text("utf-8")
    else:
        with open(path, encoding="utf-8") as fh:
            raw = fh.read()
    data: dict[str, Any] = json.loads(raw)
    return data


_SEP: Final = "[ _\\-]?"


def _trie_regex(words: Iterable[str]) -> str:
    """One regex for many literal words, sharing prefixes; longest alternative tried first.

    A space in a word matches an optional space/underscore/hyphen. Word boundaries at the end
    are checked by the caller (a lookahead per word makes compiling hundreds of times slower).
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alts = []
        for ch in sorted(k for k in node if k):
            piece = _SEP if ch == " " else re.escape(ch)
            alts.append(piece + emit(node[ch]))
        if "" in node:
            alts.append("")
        if len(alts) == 1:
            return alts[0]
        return "(?:" + "|".join(alts) + ")"

    return emit(trie)


def _sep_key(s: str) -> str:
    return re.sub(r"[ _\-]", "", s)


class CueMatcher:
    """Find counterfeit cues, genuine cues and negated cues.

    Parameters
    ----------
    lexicon_path : str, optional
        A JSON lexicon with the layout of ``detector/data/cues.json`` (the default).

    Notes
    -----
    A counterfeit cue that is negated ("not a replica", "no es réplica", "keine Fälschung",
    "bukan KW", "不是高仿", "sin imitaciones", "コピー品ではありません") is reported with kind
    ``"negated_cue"``; so is a negated genuine cue ("not authentic", "no receipt").
    """

    def __init__(self, lexicon_path: str | None = None) -> None:
        lexicon = _load_lexicon(lexicon_path)
        self.cues: dict[str, Cue] = {}
        keys: dict[str, Cue | None] = {}
        bounded: set[str] = set()
        unbounded: set[str] = set()

        def add(pattern: str, cue: Cue | None) -> None:
            folded = normalize(pattern).text.strip()
            folded = re.sub(r"[ _\-]+", " ", folded)
            if not folded:
                return
            key = _sep_key(folded)
            old = keys.get(key)
            if (
                old is not None
                and cue is not None
                and old.id != cue.id
                and old.weight >= cue.weight
            ):
                return
            keys[key] = cue
            (bounded if _is_word_char(folded[0]) else unbounded).add(folded)

        for entry in lexicon["cues"]:
            rb, ra = entry.get("reject_before"), entry.get("reject_after")
            cue = Cue(
                id=entry["id"],
                kind="genuine" if entry["kind"] == "genuine" else "cue",
                category=entry["category"],
                weight=float(entry["weight"]),
                reject_before=re.compile(rb) if rb else None,
                reject_after=re.compile(ra) if ra else None,
            )
            self.cues[cue.id] = cue
            for patterns in entry["patterns"].values():
                for p in patterns:
                    add(p, cue)
        for lang, phrases in lexicon.get("ignore", {}).items():
            if lang != "about":
                for p in phrases:
                    add(p, None)
        self._keys = keys
        parts = []
        if bounded:
            parts.append(f"(?<!{_WORD_CLASS})(?:{_trie_regex(bounded)})")
        if unbounded:
            parts.append(_trie_regex(unbounded))
        self._regex = re.compile("|".join(parts))

        neg = lexicon["negation"]
        self._negators = frozenset(neg["negators"])
        self._fillers = frozenset(neg["fillers"])
        cjk_neg = "|".join(sorted(map(re.escape, neg["cjk_negators"]), key=len, reverse=True))
        cjk_fill = "|".join(sorted(map(re.escape, neg["cjk_fillers"]), key=len, reverse=True))
        self._cjk_neg = re.compile(f"(?:{cjk_neg})(?:{cjk_fill}|\\s)*$")
        self._post_neg = [re.compile(p) for p in neg["post_negators"]]
        conn = "|".join(sorted(map(re.escape, neg["connectors"]), key=len, reverse=True))
        self._connector = re.compile(f"^(?:|\\s*[,/&]\\s*|[\\s,/&]*(?:{conn})[\\s,]*)$")
        breaks_latin = [w for w in neg["clause_breaks"] if not _CJK_CHAR.search(w)]
        breaks_cjk = [w for w in neg["clause_breaks"] if _CJK_CHAR.search(w)]
        self._clause = re.compile(
            "[.!?;:,\\n|()\\[\\]]"
            + "".join(f"|(?<!{_WORD_CLASS}){re.escape(w)}(?!{_WORD_CLASS})" for w in breaks_latin)
            + "".join(f"|{re.escape(w)}" for w in breaks_cjk)
        )

    def find(self, text: str | NormalizedText) -> list[Span]:
        """Cue spans (kinds ``cue``, ``genuine_cue``, ``negated_cue``) in text order."""
        nt = _as_normalized(text)
        s = nt.text
        out: list[Span] = []
        prev_end = 0
        prev_kind: str | None = None
        prev_negated = False
        pos = 0
        search = self._regex.search
        while True:
            m = search(s, pos)
            if m is None:
                break
            a = m.start()
            hit = self._resolve(s, a, m.end())
            if hit is None:
                pos = a + 1
                continue
            b, cue = hit
            pos = b
            if cue is None:  # an ignore phrase ("fake fur") swallows the cue words in it
                prev_end, prev_kind, prev_negated = b, None, False
                continue
            if cue.reject_before is not None and cue.reject_before.search(s[max(0, a - 20) : a]):
                continue
            if cue.reject_after is not None and cue.reject_after.search(s[b : b + 25]):
                continue
            negated = self._negated(s, a, b, prev_end)
            if not negated and prev_negated and prev_kind == cue.kind:
                negated = bool(self._connector.match(s[prev_end:a]))
            kind = "genuine_cue" if cue.kind == "genuine" else "cue"
            if negated:
                kind = "negated_cue"
            out.append(_make_span(nt, kind, a, b, cue.id, cue.category))
            prev_end, prev_kind, prev_negated = b, cue.kind, negated
        return out

    def _resolve(self, s: str, a: int, b: int) -> tuple[int, Cue | None] | None:
        """The longest lexicon phrase starting at ``a`` (within ``s[a:b]``) ending on a boundary."""
        n = len(s)
        for end in range(b, a, -1):
            last = s[end - 1]
            if last in " _-":
                continue
            if end < n and _is_word_char(last) and _is_word_char(s[end]):
                continue
            key = _sep_key(s[a:end])
            if key in self._keys:
                return end, self._keys[key]
        return None

    def _negated(self, s: str, a: int, b: int, prev_end: int) -> bool:
        after = s[b : b + 24]
        if any(p.search(after) for p in self._post_neg):
            return True
        lo = max(prev_end, a - 60, 0)
        window = s[lo:a]
        cut = 0
        for m in self._clause.finditer(window):
            cut = m.end()
        window = window[cut:]
        if not window:
            return False
        if self._cjk_neg.search(window):
            return True
        if _CJK_CHAR.search(window[-1:]):
            return False
        words = _TOKEN_RE.findall(window)
        others = 0
        closer = ""
        for w in reversed(words[-6:]):
            if w in self._negators and not (w == "no" and closer.isdigit()):
                return True
            if w not in self._fillers:
                others += 1
                if others > 1:
                    return False
            closer = w
        return False

    def cue(self, cue_id: str) -> Cue:
        """The lexicon entry behind a span's label."""
        return self.cues[cue_id]


@lru_cache(maxsize=1)
def default_cue_matcher() -> CueMatcher:
    """The cue matcher for the bundled lexicon, built on first use and shared."""
    return CueMatcher()


def find_spans(
    text: str | NormalizedText,
    brands: BrandMatcher | None = None,
    cues: CueMatcher | None = None,
    *,
    cue_spans: Sequence[Span] | None = None,
) -> list[Span]:
    """Brand and cue spans of one text, normalised once, sorted by position.

    ``cue_spans``: this text's spans from ``cues`` when they were found already.
    """
    nt = _as_normalized(text)
    spans = list((cues or default_cue_matcher()).find(nt) if cue_spans is None else cue_spans)
    if brands is not None:
        spans.extend(brands.find(nt))
    spans.sort(key=lambda sp: (sp.start, sp.end))
    return spans


@dataclass(frozen=True, slots=True)
class ListingText:
    """A listing's title and description normalised, and their cue spans, found once.

    Scoring reads both twice: the text model's features and the verdict's spans. A listing
    given to :meth:`TextModel.analyse <detector.classifier.TextModel.analyse>` with a
    ``"prepared"`` member holding one of these is not normalised again.
    """

    title: NormalizedText
    description: NormalizedText
    title_cues: tuple[Span, ...]
    description_cues: tuple[Span, ...]
    cues: CueMatcher

    @classmethod
    def of(cls, title: str, description: str, cues: CueMatcher | None = None) -> ListingText:
        cm = cues or default_cue_matcher()
        nt_title, nt_desc = normalize(title), normalize(description)
        return cls(
            nt_title,
            nt_desc,
            tuple(cm.find(nt_title)) if title else (),
            tuple(cm.find(nt_desc)) if description else (),
            cm,
        )


# --------------------------------------------------------------------------------------------
# Features.

TEXT_FEATURE_NAMES: Final = (
    "cue_strong",
    "cue_weak",
    "cue_weight",
    "cue_replica",
    "cue_grade",
    "cue_factory",
    "cue_packaging",
    "cue_dupe",
    "cue_contact",
    "negated_cue",
    "negated_genuine",
    "genuine_cue",
    "genuine_weight",
    "genuine_authentic",
    "genuine_receipt",
    "genuine_used",
    "genuine_accessory",
    "genuine_authorized",
    "accessory_context",
    "brand_mentions",
    "brand_distinct",
    "brand_exact",
    "brand_fuzzy",
    "brand_obfuscated",
    "brand_accessory",
    "brand_style",
    "obfuscated_tokens",
    "title_cue_strong",
    "title_brand",
    "title_negated_cue",
)

_FOR_BRAND: Final = re.compile(
    r"(?:(?<!\w)(?:for|fits?|with|para|pour|für|fur|untuk|для|per|compatible|kompatibel)"
    r"|适用于|适用|兼容|适配|対応)\W{0,3}(?:\w+\W{1,3})?$",
    re.IGNORECASE,
)
_STYLE_AFTER: Final = re.compile(
    r"^[\s\-_'’s]{0,3}(?:style|styled|type|inspired|look|like|estilo|tipo|stil|façon|风格|风|款|同款)",
    re.IGNORECASE,
)
_STYLE_BEFORE: Final = re.compile(
    r"(?:(?<!\w)(?:ala|estilo|style|tipo|like|inspired by|similar to|dupe|dupe of|à la|a la|"
    r"im stil von|в стиле))\W{1,3}$",
    re.IGNORECASE,
)


def text_features(
    title: str | NormalizedText,
    description: str | NormalizedText,
    *,
    brands: BrandMatcher | None = None,
    cues: CueMatcher | None = None,
    cue_spans: tuple[Sequence[Span], Sequence[Span]] | None = None,
    brand_spans: tuple[Sequence[Span], Sequence[Span]] | None = None,
) -> dict[str, float]:
    """Counts per signal family for the classifier; keys are :data:`TEXT_FEATURE_NAMES`.

    Without ``brands`` the brand features are 0. The title and the description are scanned
    separately (``title_*`` features count the title alone) and the counts added up. Either may
    be given already normalised (the classifier normalises each field once and reuses it), and
    ``cue_spans`` the two fields' spans from ``cues`` when they were found already (likewise
    ``brand_spans`` from ``brands``).
    """
    cm = cues or default_cue_matcher()
    feats = dict.fromkeys(TEXT_FEATURE_NAMES, 0.0)
    brand_ids: set[str] = set()
    for i, (field, is_title) in enumerate(((title, True), (description, False))):
        nt = _as_normalized(field)
        part = nt.original
        if not part:
            continue
        cue_spans_here = cm.find(nt) if cue_spans is None else cue_spans[i]
        if brand_spans is not None:
            brand_spans_here: Sequence[Span] = brand_spans[i]
        else:
            brand_spans_here = brands.find(nt) if brands is not None else []
        _add_cue_features(feats, cm, cue_spans_here, is_title)
        accessory_ends = [sp.end for sp in cue_spans_here if sp.detail == "accessory"]
        for sp in brand_spans_here:
            brand_ids.add(sp.label)
            feats["brand_mentions"] += 1
            if "fuzzy" in sp.detail:
                feats["brand_fuzzy"] += 1
            if "obfuscated" in sp.detail:
                feats["brand_obfuscated"] += 1
            if sp.detail in ("exact", "hashtag"):
                feats["brand_exact"] += 1
            before = part[max(0, sp.start - 40) : sp.start]
            near_accessory = any(0 <= sp.start - e <= 25 for e in accessory_ends)
            if near_accessory or _FOR_BRAND.search(before):
                feats["brand_accessory"] += 1
            if _STYLE_AFTER.match(part[sp.end : sp.end + 20]) or _STYLE_BEFORE.search(before):
                feats["brand_style"] += 1
            if is_title:
                feats["title_brand"] += 1
        feats["obfuscated_tokens"] += _count_obfuscated_tokens(nt)
    feats["brand_distinct"] = float(len(brand_ids))
    feats["accessory_context"] = feats["genuine_accessory"] + feats["brand_accessory"]
    return feats


def _add_cue_features(
    feats: dict[str, float], cm: CueMatcher, spans: Iterable[Span], is_title: bool
) -> None:
    for sp in spans:
        cue = cm.cue(sp.label)
        if sp.kind == "negated_cue":
            key = "negated_genuine" if cue.kind == "genuine" else "negated_cue"
            feats[key] += 1
            if is_title and cue.kind == "cue":
                feats["title_negated_cue"] += 1
        elif sp.kind == "genuine_cue":
            feats["genuine_cue"] += 1
            feats["genuine_weight"] += cue.weight
            feats[f"genuine_{cue.category}"] += 1
        else:
            feats["cue_strong" if cue.strong else "cue_weak"] += 1
            feats["cue_weight"] += cue.weight
            feats[f"cue_{cue.category}"] += 1
            if is_title and cue.strong:
                feats["title_cue_strong"] += 1


def _count_obfuscated_tokens(nt: NormalizedText) -> float:
    if not nt.flags.translate(None, _NOT_OBFUSCATED):
        return 0.0
    count = 0
    for m in _TOKEN_RE.finditer(nt.text):
        flags = nt.flags_in(m.start(), m.end())
        if flags & OBFUSCATION & ~SPLIT or (flags & SPLIT and m.end() - m.start() >= 3):
            count += 1
    return float(count)

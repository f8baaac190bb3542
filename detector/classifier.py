"""The text classifier: one scikit-learn ``Pipeline`` from a raw listing to P(counterfeit).

::

    ListingFeatures            normalise title + description once (detector.text.normalize),
                               scan cues and brands, price ratio to the reference price
      -> FeatureUnion
           word   NgramTfidf(kind="word", 1-2)      words of the normalised text
           char   NgramTfidf(kind="char", 2-5)      characters of the normalised text (also CJK)
           lexicon LexiconScaler("lexicon")         cue / brand counts, scaled to [0, 1]
           price   LexiconScaler("price")           discount to the reference price (damped)
      -> CalibratedClassifierCV(LogisticRegression, sigmoid, ensemble=False)

Everything that learns follows scikit-learn's contract (parameters stored as given in
``__init__``, learned attributes end in ``_``, ``fit`` returns ``self``), so training and serving
share one preprocessing path. :class:`TextModel` wraps a fitted pipeline with a version and a model
card, scores listings and explains a score as the terms and features that pushed it up.

Listings are mappings or objects with the attributes ``title``, ``description``,
``price_amount``, ``price_currency`` and ``reference_price`` (``{"amount", "currency"}``, the
retail price of the brand's product in any currency; the ratio is used only when the currencies
agree). ``training.text_corpus.LabeledListing`` qualifies.

The n-gram vectorisers are our own (not ``TfidfVectorizer``) for speed: character n-grams are
keyed by a 64-bit polynomial hash computed with numpy over a whole batch and looked up in a sorted
key array, so scoring costs a few numpy calls instead of a Python loop per n-gram; the vocabulary
(``terms_``) is kept, so every column still has a readable name for :meth:`TextModel.explain`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from detector.text import (
    TEXT_FEATURE_NAMES,
    BrandMatcher,
    BrandTerms,
    CueMatcher,
    ListingText,
    NormalizedText,
    Span,
    default_cue_matcher,
    normalize,
    text_features,
)

__all__ = [
    "MODEL_SCHEMA",
    "NUMERIC_FEATURE_NAMES",
    "PRICE_FEATURE_NAMES",
    "LexiconScaler",
    "ListingFeatures",
    "NgramTfidf",
    "PreparedListings",
    "TextModel",
    "build_pipeline",
    "listing_field",
    "price_features",
]

# Bump whenever a parameter or fitted attribute of the classes below changes name or meaning:
# artifacts record it and an artifact from another schema is refused (and the default model
# rebuilt), exactly like an artifact from another scikit-learn version.
MODEL_SCHEMA: Final = 2

PRICE_FEATURE_NAMES: Final = ("price_discount", "price_far_below")
NUMERIC_FEATURE_NAMES: Final[tuple[str, ...]] = (*TEXT_FEATURE_NAMES, *PRICE_FEATURE_NAMES)
_FAR_BELOW: Final = 0.35  # price under 35% of retail
_MAX_DISCOUNT: Final = 3.0  # -log(ratio) capped: 5% of retail and 0.1% say the same thing

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------------------------
# Listing access


def listing_field(listing: Any, name: str) -> Any:
    """``listing[name]`` for mappings, ``listing.name`` for objects; None when absent."""
    if isinstance(listing, Mapping):
        return listing.get(name)
    return getattr(listing, name, None)


def price_features(listing: Any) -> tuple[float, float]:
    """(discount, far_below): ``-log(price / reference)`` clipped to [0, 3], and price < 35%.

    Both are 0 when the price or the reference price is unknown, or in another currency: an
    unknown price is treated like a price at retail, never as evidence either way.
    """
    amount = listing_field(listing, "price_amount")
    ref = listing_field(listing, "reference_price")
    if amount is None or not ref:
        return 0.0, 0.0
    ref_amount = listing_field(ref, "amount")
    ref_currency = listing_field(ref, "currency")
    currency = listing_field(listing, "price_currency")
    if not ref_amount or ref_amount <= 0 or amount <= 0:
        return 0.0, 0.0
    if currency and ref_currency and str(currency).upper() != str(ref_currency).upper():
        return 0.0, 0.0
    ratio = float(amount) / float(ref_amount)
    discount = min(max(-math.log(ratio), 0.0), _MAX_DISCOUNT)
    return discount, 1.0 if ratio < _FAR_BELOW else 0.0


# --------------------------------------------------------------------------------------------
# Step 1: listing -> normalised text + numeric features


class PreparedListing(NamedTuple):
    """One listing as :meth:`ListingFeatures.prepare_one` leaves it."""

    text: str
    row: list[float]
    title: NormalizedText
    description: NormalizedText
    cue_spans: tuple[Sequence[Span], Sequence[Span]]  # (title, description)
    brand_spans: tuple[Sequence[Span], Sequence[Span]]


def _spans_of(matcher: CueMatcher | BrandMatcher, nt: NormalizedText) -> tuple[Span, ...]:
    """``matcher``'s spans in one field (none in an empty one, as text_features skips it)."""
    return tuple(matcher.find(nt)) if nt.original else ()


@dataclass(frozen=True, slots=True)
class PreparedListings:
    """What :class:`ListingFeatures` hands to the feature union.

    Attributes
    ----------
    texts : list of str
        Normalised ``title + "\\n" + description`` per listing.
    numeric : ndarray of shape (n, len(NUMERIC_FEATURE_NAMES))
        Lexicon and price features (``log1p`` of the counts).
    """

    texts: list[str]
    numeric: FloatArray = field(repr=False)

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices: Sequence[int] | npt.NDArray[np.intp]) -> PreparedListings:
        """The listings at ``indices`` (for cross-validation on features computed once)."""
        idx = np.asarray(indices, dtype=np.intp)
        return PreparedListings([self.texts[i] for i in idx], self.numeric[idx])

    @classmethod
    def concat(cls, parts: Sequence[PreparedListings]) -> PreparedListings:
        """One batch from several (e.g. features computed in chunks)."""
        texts = [t for p in parts for t in p.texts]
        if not parts:
            return cls([], np.zeros((0, len(NUMERIC_FEATURE_NAMES))))
        return cls(texts, np.vstack([p.numeric for p in parts]))


class ListingFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Normalise each listing once and compute its lexicon, brand and price features.

    Parameters
    ----------
    brands : sequence of (brand_id, names) pairs, default=()
        Brands for :class:`detector.text.BrandMatcher` (names and aliases, any script). Plain
        tuples, so the fitted pipeline serialises without custom types.

    Attributes
    ----------
    n_brands_ : int
        Number of brands the matcher was built from.
    feature_names_ : tuple of str
        Names of the numeric columns (:data:`NUMERIC_FEATURE_NAMES`).
    """

    def __init__(self, brands: Sequence[tuple[str, Sequence[str]]] = ()) -> None:
        self.brands = brands

    def fit(self, X: Iterable[Any], y: Any = None) -> ListingFeatures:
        self.n_brands_ = len(self.brands)
        self.feature_names_ = NUMERIC_FEATURE_NAMES
        return self

    def _matcher(self) -> BrandMatcher | None:
        matcher: BrandMatcher | None = self.__dict__.get("_brand_matcher")
        if matcher is None and self.brands:
            terms = [BrandTerms(str(b), tuple(names)) for b, names in self.brands]
            matcher = BrandMatcher(terms)
            self.__dict__["_brand_matcher"] = matcher
        return matcher

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state.pop("_brand_matcher", None)  # rebuilt on first use; never serialised
        return state

    def prepare_one(self, listing: Any) -> PreparedListing:
        """Normalised text, numeric row, the two normalised fields of one listing and their spans.

        A listing with a ``"prepared"`` :class:`~detector.text.ListingText` (the scorer's) is
        not normalised again, nor its cues found again. The spans are kept for the explanation
        (:func:`_evidence`), which would otherwise search both fields again.
        """
        cues = default_cue_matcher()
        matcher = self._matcher()
        prepared = listing_field(listing, "prepared")
        found: tuple[Sequence[Span], Sequence[Span]] | None = None
        if isinstance(prepared, ListingText):
            nt_title, nt_desc = prepared.title, prepared.description
            if prepared.cues is cues:
                found = (prepared.title_cues, prepared.description_cues)
        else:
            nt_title = normalize(str(listing_field(listing, "title") or ""))
            nt_desc = normalize(str(listing_field(listing, "description") or ""))
        if found is None:
            found = (_spans_of(cues, nt_title), _spans_of(cues, nt_desc))
        brand_found: tuple[Sequence[Span], Sequence[Span]] = (
            (_spans_of(matcher, nt_title), _spans_of(matcher, nt_desc))
            if matcher is not None
            else ((), ())
        )
        feats = text_features(
            nt_title, nt_desc, brands=matcher, cues=cues, cue_spans=found, brand_spans=brand_found
        )
        row = [math.log1p(feats[name]) for name in TEXT_FEATURE_NAMES]
        row.extend(price_features(listing))
        text = nt_title.text + "\n" + nt_desc.text if nt_desc.text else nt_title.text
        return PreparedListing(text, row, nt_title, nt_desc, found, brand_found)

    def transform(self, X: Iterable[Any]) -> PreparedListings:
        texts: list[str] = []
        rows: list[list[float]] = []
        for listing in X:
            one = self.prepare_one(listing)
            texts.append(one.text)
            rows.append(one.row)
        numeric = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(NUMERIC_FEATURE_NAMES))
        return PreparedListings(texts, numeric)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.str_]:
        return np.asarray(NUMERIC_FEATURE_NAMES, dtype=object)


def _texts(X: PreparedListings | Sequence[str]) -> Sequence[str]:
    return X.texts if isinstance(X, PreparedListings) else X


# --------------------------------------------------------------------------------------------
# Step 2a: n-gram TF-IDF (word and character)

_WORD_RE: Final = re.compile(r"[^\W_]+(?:[:'][^\W_]+)*")  # keeps "1:1" and "l'original"
_MULT: Final = np.uint64(0x9E3779B97F4A7C15)
_SALT: Final = 0xC2B2AE3D27D4EB4F
_BUCKET_BITS: Final = 16
_ONE_SHOT: Final = 1 << 15  # keys x bucket depth up to which _lookup compares in one pass


def _char_keys(
    texts: Sequence[str], sizes: Sequence[int]
) -> tuple[
    npt.NDArray[np.uint64], npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp], str
]:
    """64-bit keys of every character n-gram of every text, with row, start and size.

    Each text is padded with a space on both sides and its whitespace collapsed to one space;
    n-grams never cross from one text into the next. Returns ``(keys, rows, starts, sizes,
    joined)`` where ``joined[starts[k]:starts[k] + sizes[k]]`` is the n-gram of ``keys[k]``.
    """
    padded = [" " + " ".join(t.split()) + " " for t in texts]
    joined = "".join(padded)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    total = len(codes)
    single = len(padded) == 1  # one text: every n-gram stays inside it, every row is 0
    if not single:
        lengths = np.fromiter((len(p) for p in padded), dtype=np.intp, count=len(padded))
        ends = np.cumsum(lengths)
        row_of = np.repeat(np.arange(len(padded), dtype=np.intp), lengths)
    all_keys, all_rows, all_starts, kept_sizes, counts = [], [], [], [], []
    raw, raw_n = codes, 1  # raw[i]: the unfinalised polynomial of codes[i : i + raw_n]
    for n in sizes:
        m = total - n + 1
        if m <= 0:
            continue
        if n <= raw_n:
            raw, raw_n = codes, 1
        # the same wrapping uint64 arithmetic as multiplying out from the first character
        while raw_n < n:
            width = total - raw_n
            raw = raw[:width] * _MULT
            raw += codes[raw_n : raw_n + width]
            raw_n += 1
        key = raw[:m] ^ np.uint64((_SALT * n) % 2**64)
        key *= _MULT  # finalise: the last characters must reach the top (bucket) bits too
        key ^= key >> np.uint64(29)
        starts = np.arange(m, dtype=np.intp)
        kept_sizes.append(n)
        if single:
            all_keys.append(key)
            all_starts.append(starts)
            counts.append(m)
            continue
        rows = row_of[:m]
        ok = starts + n <= ends[rows]  # stays inside its own text
        all_keys.append(key[ok])
        all_rows.append(rows[ok])
        all_starts.append(starts[ok])
        counts.append(int(ok.sum()))
    if not all_keys:
        empty = np.zeros(0, dtype=np.intp)
        return np.zeros(0, dtype=np.uint64), empty, empty, empty, joined
    found = int(sum(counts))
    return (
        np.concatenate(all_keys),
        np.zeros(found, dtype=np.intp) if single else np.concatenate(all_rows),
        np.concatenate(all_starts),
        np.repeat(np.asarray(kept_sizes, dtype=np.intp), counts),
        joined,
    )


def _bucket_starts(table: npt.NDArray[np.uint64]) -> npt.NDArray[np.int32]:
    """Where each bucket of the top ``_BUCKET_BITS`` bits starts in the sorted ``table``."""
    shift = np.uint64(64 - _BUCKET_BITS)
    top = (table >> shift).astype(np.intp)
    counts = np.bincount(top, minlength=1 << _BUCKET_BITS)
    starts = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=starts[1:])
    return starts


def _lookup(
    table: npt.NDArray[np.uint64], starts: npt.NDArray[np.int32], keys: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """Positions of ``keys`` in the sorted ``table`` and which of them are really there.

    A binary search per key (``searchsorted``) misses the cache on every step; jumping to the
    key's bucket by its top bits and comparing the few entries there is several times faster.
    """
    n = len(table)
    pos = np.zeros(len(keys), dtype=np.intp)
    hit = np.zeros(len(keys), dtype=bool)
    if n == 0 or len(keys) == 0:
        return pos, hit
    bucket = (keys >> np.uint64(64 - _BUCKET_BITS)).astype(np.intp)
    first = starts[bucket]
    width = starts[bucket + 1] - first
    widest = int(width.max())
    if widest == 0:
        return pos, hit
    if len(keys) * widest <= _ONE_SHOT:
        # Few keys (one listing): compare every (key, entry of its bucket) pair in one pass
        # rather than one numpy round per bucket depth; the same positions (table keys are
        # unique), and only the entries of each key's own bucket are read.
        width = width.astype(np.intp)
        owner = np.repeat(np.arange(len(keys), dtype=np.intp), width)
        entry = np.arange(len(owner), dtype=np.intp)
        entry += np.repeat(first - (np.cumsum(width) - width), width)
        equal = table[entry] == keys[owner]
        matched = owner[equal]
        pos[matched] = entry[equal]
        hit[matched] = True
        return pos, hit
    for i in range(widest):
        cand = first + i
        live = np.flatnonzero((i < width) & ~hit)
        found = live[table[cand[live]] == keys[live]]
        pos[found] = cand[found]
        hit[found] = True
    return pos, hit


@dataclass(frozen=True, slots=True)
class CharHits:
    """In-vocabulary character n-gram occurrences of a batch of texts.

    Occurrence ``k`` is column ``cols[k]`` of text ``rows[k]``, found at
    ``joined[starts[k]:starts[k] + sizes[k]]`` (``joined``: the padded texts, concatenated).
    """

    rows: npt.NDArray[np.intp]
    cols: npt.NDArray[np.intp]
    starts: npt.NDArray[np.intp]
    sizes: npt.NDArray[np.intp]
    joined: str


def _word_grams(text: str, max_n: int) -> list[str]:
    tokens = _WORD_RE.findall(text)
    grams = list(tokens)
    if max_n >= 2:
        grams.extend(map(" ".join, itertools.pairwise(tokens)))
    return grams


class NgramTfidf(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """TF-IDF over word or character n-grams of already normalised text.

    Parameters
    ----------
    kind : {"word", "char"}, default="char"
        ``"word"``: tokens of letters/digits (``1:1`` stays one token), unigrams and, when
        ``ngram_range[1] >= 2``, bigrams. ``"char"``: character n-grams of the whitespace-
        collapsed text padded with spaces (crossing word boundaries; CJK needs no tokenizer).
    ngram_range : (int, int), default=(2, 5)
        Smallest and largest n (``"word"`` supports n <= 2).
    min_df : int, default=3
        Keep terms seen in at least this many training texts (rare terms are how a linear
        model memorises individual templates).
    max_df : float, default=1.0
        Drop terms seen in more than this share of training texts.
    max_features : int or None, default=None
        Keep at most this many terms, the most frequent by document frequency.
    sublinear_tf : bool, default=True
        ``1 + log(tf)`` instead of raw counts.

    Attributes
    ----------
    terms_ : ndarray of str
        The vocabulary; column ``j`` is ``terms_[j]``.
    idf_ : ndarray of float
        Smoothed inverse document frequency per column.
    keys_ : ndarray of uint64 (``"char"`` only)
        Sorted 64-bit n-gram keys; ``key_cols_[i]`` is the column of ``keys_[i]``.
    """

    def __init__(
        self,
        kind: Literal["word", "char"] = "char",
        ngram_range: tuple[int, int] = (2, 5),
        min_df: int = 3,
        max_df: float = 1.0,
        max_features: int | None = None,
        sublinear_tf: bool = True,
    ) -> None:
        self.kind = kind
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf

    # -- fitting

    def fit(self, X: PreparedListings | Sequence[str], y: Any = None) -> NgramTfidf:
        texts = _texts(X)
        n_docs = len(texts)
        if self.kind == "char":
            keys, df, name_of = self._char_df(texts)
        elif self.kind == "word":
            keys, df, name_of = self._word_df(texts)
        else:
            raise ValueError(f"kind must be 'word' or 'char', not {self.kind!r}")
        keep = (df >= self.min_df) & (df <= self.max_df * n_docs)
        idx = np.flatnonzero(keep)
        if self.max_features is not None and len(idx) > self.max_features:
            order = np.argsort(-df[idx], kind="stable")[: self.max_features]
            idx = np.sort(idx[order])
        self.terms_ = np.asarray([name_of(int(i)) for i in idx], dtype=str)
        self.idf_ = np.log((1.0 + n_docs) / (1.0 + df[idx].astype(np.float64))) + 1.0
        if self.kind == "char":
            kept = keys[idx]
            order = np.argsort(kept)
            self.keys_ = kept[order]
            self.key_cols_ = order.astype(np.int64)
        self.n_features_out_ = len(self.terms_)
        return self

    def _char_df(
        self, texts: Sequence[str]
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64], Callable[[int], str]]:
        lo, hi = self.ngram_range
        sizes = range(lo, hi + 1)
        chunk_keys: list[npt.NDArray[np.uint64]] = []
        chunk_df: list[npt.NDArray[np.int64]] = []
        where: list[npt.NDArray[np.intp]] = []  # (chunk, start, size) of one occurrence per key
        joined_texts: list[str] = []
        for start in range(0, len(texts), 2000):
            keys, rows, starts, lens, joined = _char_keys(texts[start : start + 2000], sizes)
            order = np.lexsort((rows, keys))
            k, r = keys[order], rows[order]
            first = np.ones(len(k), dtype=bool)
            first[1:] = (k[1:] != k[:-1]) | (r[1:] != r[:-1])
            uk, ui, counts = np.unique(k[first], return_index=True, return_counts=True)
            pos = order[np.flatnonzero(first)[ui]]
            chunk_keys.append(uk)
            chunk_df.append(counts)
            where.append(
                np.stack([np.full(len(pos), len(joined_texts)), starts[pos], lens[pos]], axis=1)
            )
            joined_texts.append(joined)
        if not chunk_keys:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), str
        all_keys = np.concatenate(chunk_keys)
        uk, first_idx, inverse = np.unique(all_keys, return_index=True, return_inverse=True)
        df = np.bincount(inverse, weights=np.concatenate(chunk_df)).astype(np.int64)
        spots = np.concatenate(where)[first_idx]

        def name_of(i: int) -> str:
            chunk, begin, size = (int(v) for v in spots[i])
            return joined_texts[chunk][begin : begin + size]

        return uk, df, name_of

    def _word_df(
        self, texts: Sequence[str]
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64], Callable[[int], str]]:
        counter: Counter[str] = Counter()
        for text in texts:
            counter.update(set(_word_grams(text, self.ngram_range[1])))
        names = sorted(counter)
        df = np.asarray([counter[n] for n in names], dtype=np.int64)
        return np.zeros(0, dtype=np.uint64), df, names.__getitem__

    # -- scoring

    def _vocab(self) -> dict[str, int]:
        vocab: dict[str, int] | None = self.__dict__.get("_vocab_cache")
        if vocab is None:
            vocab = {str(t): i for i, t in enumerate(self.terms_)}
            self.__dict__["_vocab_cache"] = vocab
        return vocab

    def _starts(self) -> npt.NDArray[np.int32]:
        starts: npt.NDArray[np.int32] | None = self.__dict__.get("_starts_cache")
        if starts is None:
            starts = _bucket_starts(self.keys_)
            self.__dict__["_starts_cache"] = starts
        return starts

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state.pop("_vocab_cache", None)  # derived tables: rebuilt on first use
        state.pop("_starts_cache", None)
        return state

    def _char_hits(self, texts: Sequence[str]) -> CharHits:
        """Every in-vocabulary character n-gram occurrence of ``texts`` (``kind="char"``)."""
        lo, hi = self.ngram_range
        keys, rows, starts, sizes, joined = _char_keys(texts, range(lo, hi + 1))
        pos, hit = _lookup(self.keys_, self._starts(), keys)
        cols = self.key_cols_[pos[hit]].astype(np.intp)
        return CharHits(rows[hit], cols, starts[hit], sizes[hit], joined)

    def _hits(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """(row, column) of every in-vocabulary n-gram occurrence, unsorted, with repeats."""
        if self.kind == "char":
            char_hits = self._char_hits(texts)
            return char_hits.rows, char_hits.cols
        get = self._vocab().get
        row_list: list[int] = []
        col_list: list[int] = []
        for i, text in enumerate(texts):
            found = [c for c in map(get, _word_grams(text, self.ngram_range[1])) if c is not None]
            col_list.extend(found)
            row_list.extend([i] * len(found))
        return np.asarray(row_list, dtype=np.intp), np.asarray(col_list, dtype=np.intp)

    def _triplets(
        self, X: PreparedListings | Sequence[str], *, tfidf: bool = True
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray, int]:
        """Sorted unique (row, column, value) of the TF-IDF (or raw count) matrix, and n rows.

        Everything in numpy over the whole batch: no sparse-matrix construction on the scoring
        path (scipy's constructors cost more than the arithmetic for a single listing).
        """
        texts = _texts(X)
        rows, cols = self._hits(texts)
        return self._from_hits(rows, cols, len(texts), tfidf=tfidf)

    def _from_hits(
        self,
        rows: npt.NDArray[np.intp],
        cols: npt.NDArray[np.intp],
        n_texts: int,
        *,
        tfidf: bool = True,
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray, int]:
        """:meth:`_triplets` from the occurrences :meth:`_hits` found."""
        if n_texts == 1:  # one row: the columns alone are the keys
            cols, counts = np.unique(cols, return_counts=True)
            rows = np.zeros(len(cols), dtype=np.intp)
        else:
            width = max(int(self.n_features_out_), 1)
            flat, counts = np.unique(rows.astype(np.int64) * width + cols, return_counts=True)
            rows, cols = (flat // width).astype(np.intp), (flat % width).astype(np.intp)
        return rows, cols, self._tfidf(rows, cols, counts, n_texts, tfidf), n_texts

    def _from_hits_where(
        self, rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp], n_texts: int
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray, npt.NDArray[np.intp]]:
        """:meth:`_from_hits` (TF-IDF) and, per occurrence, the index of its (row, column)."""
        if n_texts == 1:
            cols, where, counts = np.unique(cols, return_inverse=True, return_counts=True)
            rows = np.zeros(len(cols), dtype=np.intp)
        else:
            width = max(int(self.n_features_out_), 1)
            flat, where, counts = np.unique(
                rows.astype(np.int64) * width + cols, return_inverse=True, return_counts=True
            )
            rows, cols = (flat // width).astype(np.intp), (flat % width).astype(np.intp)
        return rows, cols, self._tfidf(rows, cols, counts, n_texts, True), where

    def _tfidf(
        self,
        rows: npt.NDArray[np.intp],
        cols: npt.NDArray[np.intp],
        counts: npt.NDArray[np.intp],
        n_texts: int,
        tfidf: bool,
    ) -> FloatArray:
        values = counts.astype(np.float64)
        if tfidf:
            if self.sublinear_tf:
                values = np.log(values) + 1.0
            values *= self.idf_[cols]
            norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=n_texts))
            norms[norms == 0] = 1.0
            values /= norms[rows]
        return values

    def counts(self, X: PreparedListings | Sequence[str]) -> sparse.csr_matrix:
        """Raw term counts, shape ``(n_texts, n_features_out_)``."""
        rows, cols, values, n = self._triplets(X, tfidf=False)
        return sparse.csr_matrix((values, (rows, cols)), shape=(n, self.n_features_out_))

    def transform(self, X: PreparedListings | Sequence[str]) -> sparse.csr_matrix:
        rows, cols, values, n = self._triplets(X)
        return sparse.csr_matrix((values, (rows, cols)), shape=(n, self.n_features_out_))

    def decision(self, X: PreparedListings | Sequence[str], coef: FloatArray) -> FloatArray:
        """``transform(X) @ coef`` without building the matrix."""
        rows, cols, values, n = self._triplets(X)
        return np.bincount(rows, weights=values * coef[cols], minlength=n).astype(np.float64)

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.str_]:
        return np.asarray(self.terms_, dtype=object)


# --------------------------------------------------------------------------------------------
# Step 2b: numeric lexicon / price features


class LexiconScaler(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Divide numeric features by their largest training value (no centring), into [0, 1].

    Max-abs rather than standard scaling: a rare feature (a negated genuine cue) has a tiny
    standard deviation and would be blown up to values in the tens, which makes the solver crawl
    and the coefficient meaningless. Without centring, a feature that is absent (0) contributes
    nothing to the linear score, so :meth:`TextModel.explain` only names features the listing
    actually has.

    Parameters
    ----------
    columns : {"lexicon", "price", "all"}, default="all"
        Which numeric columns this block passes on: the cue/brand counts, the price features,
        or both. Separate blocks get separate weights (and so separate regularisation).

    Attributes
    ----------
    scale_ : ndarray of float
        Per-feature divisor (largest absolute training value, 1 where it is 0).
    """

    def __init__(self, columns: Literal["lexicon", "price", "all"] = "all") -> None:
        self.columns = columns

    def _slice(self) -> slice:
        n_text = len(TEXT_FEATURE_NAMES)
        return {"lexicon": slice(0, n_text), "price": slice(n_text, None)}.get(
            self.columns, slice(None)
        )

    def _values(self, X: PreparedListings | FloatArray) -> FloatArray:
        values = X.numeric if isinstance(X, PreparedListings) else np.asarray(X, dtype=float)
        return values[:, self._slice()]

    def fit(self, X: PreparedListings | FloatArray, y: Any = None) -> LexiconScaler:
        values = self._values(X)
        scale = np.abs(values).max(axis=0) if len(values) else np.ones(values.shape[1])
        scale[scale < 1e-6] = 1.0
        self.scale_ = scale
        self.n_features_out_ = values.shape[1]
        return self

    def transform(self, X: PreparedListings | FloatArray) -> sparse.csr_matrix:
        return sparse.csr_matrix(self._values(X) / self.scale_)

    def decision(self, X: PreparedListings | FloatArray, coef: FloatArray) -> FloatArray:
        """``transform(X) @ coef`` without building the matrix."""
        result: FloatArray = (self._values(X) / self.scale_) @ coef
        return result

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.str_]:
        return np.asarray(NUMERIC_FEATURE_NAMES[self._slice()], dtype=object)


# --------------------------------------------------------------------------------------------
# The pipeline


def build_pipeline(
    brands: Sequence[tuple[str, Sequence[str]]] = (),
    *,
    C: float = 0.5,
    word_weight: float = 0.5,
    char_weight: float = 1.0,
    lexicon_weight: float = 2.0,
    price_weight: float = 0.5,
    min_df: int = 3,
    calibration_cv: int = 5,
) -> Pipeline:
    """The whole text path, unfitted.

    ``*_weight`` scale each block before the L2-regularised logistic regression: a block with
    a larger weight needs smaller coefficients for the same effect, so it is penalised less.
    The lexicon block is favoured (it carries the cue and brand knowledge that transfers to
    unseen phrasing and languages), the word block damped (whole words are where templates
    are memorised), and the price block damped too: in the synthetic corpus nearly every fake
    is cheap, on real marketplaces a low price is a weak signal alone (used goods, outlets) and
    fakes are sometimes priced near retail.
    """
    union = FeatureUnion(
        [
            ("word", NgramTfidf(kind="word", ngram_range=(1, 2), min_df=min_df, max_df=0.5)),
            ("char", NgramTfidf(kind="char", ngram_range=(2, 5), min_df=min_df, max_df=0.5)),
            ("lexicon", LexiconScaler(columns="lexicon")),
            ("price", LexiconScaler(columns="price")),
        ],
        transformer_weights={
            "word": word_weight,
            "char": char_weight,
            "lexicon": lexicon_weight,
            "price": price_weight,
        },
    )
    clf = CalibratedClassifierCV(
        LogisticRegression(
            C=C, solver="liblinear", dual=True, tol=1e-3, max_iter=2000, random_state=0
        ),
        method="sigmoid",
        cv=calibration_cv,
        ensemble=False,
    )
    return Pipeline(
        [("features", ListingFeatures(brands=tuple(brands))), ("union", union), ("clf", clf)]
    )


# --------------------------------------------------------------------------------------------
# Serving wrapper


def _linear_parts(pipeline: Pipeline) -> tuple[FloatArray, float, float]:
    """(coef, intercept, calibration slope) of the fitted pipeline's logistic regression.

    With ``ensemble=False`` the calibrated classifier holds one regression fitted on all the
    training data and one sigmoid ``p = 1 / (1 + exp(a * f + b))``; ``-a`` converts a logit
    contribution of the regression into one of the calibrated score.
    """
    clf = pipeline.named_steps["clf"]
    if isinstance(clf, CalibratedClassifierCV):
        cc = clf.calibrated_classifiers_[0]
        lr = cc.estimator
        slope = -float(cc.calibrators[0].a_)
    else:
        lr, slope = clf, 1.0
    return np.asarray(lr.coef_, dtype=np.float64).ravel(), float(lr.intercept_[0]), slope


#: (features step, per block (step, first column, weight, column names), coef, slope, lexicon names)
_ExplainParts = tuple[
    ListingFeatures, list[tuple[Any, int, float, Any]], FloatArray, float, frozenset[str]
]


class TextModel:
    """A fitted text pipeline with its version and model card.

    Parameters
    ----------
    pipeline : Pipeline
        A fitted pipeline from :func:`build_pipeline`.
    version : str
        The artifact version (``"unversioned"`` for a model never saved).
    card : mapping
        The model card (metrics, thresholds, data fingerprint, library versions ...).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        version: str = "unversioned",
        card: Mapping[str, Any] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.version = version
        self.card: dict[str, Any] = dict(card or {})

    @property
    def thresholds(self) -> dict[str, float]:
        """Serving thresholds from the card (``review``, ``block``)."""
        found = self.card.get("thresholds") or {}
        return {"review": float(found.get("review", 0.5)), "block": float(found.get("block", 0.85))}

    def predict_proba(self, listings: Sequence[Any]) -> FloatArray:
        """P(counterfeit) per listing, shape ``(n,)``."""
        if len(listings) == 0:
            return np.zeros(0, dtype=np.float64)
        fast = self._fast_parts()
        if fast is None:
            proba = self.pipeline.predict_proba(listings)
            return np.asarray(proba[:, 1], dtype=np.float64)
        features, blocks, intercept, a, b = fast
        prepared = features.transform(listings)
        f = np.full(len(prepared), intercept)
        for step, coef in blocks:
            f += step.decision(prepared, coef)
        result: FloatArray = 1.0 / (1.0 + np.exp(a * f + b))
        return result

    def _fast_parts(
        self,
    ) -> tuple[ListingFeatures, list[tuple[Any, FloatArray]], float, float, float] | None:
        """The fitted pieces for scoring without sklearn's per-call orchestration.

        The same fitted steps and arithmetic as ``pipeline.predict_proba`` (FeatureUnion ->
        regression -> sigmoid calibration), computed as a sum of per-block dot products. A
        pipeline of any other shape takes the generic path.
        """
        cached = self.__dict__.get("_fast")
        if cached is not None:
            return cached if cached != () else None
        parts = None
        steps = self.pipeline.named_steps
        clf, union = steps.get("clf"), steps.get("union")
        if (
            list(steps) == ["features", "union", "clf"]
            and isinstance(union, FeatureUnion)
            and isinstance(clf, CalibratedClassifierCV)
            and clf.method == "sigmoid"
            and len(clf.calibrated_classifiers_) == 1
            and all(isinstance(t, NgramTfidf | LexiconScaler) for _, t in union.transformer_list)
        ):
            coef, intercept, _ = _linear_parts(self.pipeline)
            calibrator = clf.calibrated_classifiers_[0].calibrators[0]
            weights = union.transformer_weights or {}
            blocks: list[tuple[Any, FloatArray]] = []
            offset = 0
            for name, step in union.transformer_list:
                width = int(step.n_features_out_)
                w = float(weights.get(name, 1.0))
                blocks.append((step, coef[offset : offset + width] * w))
                offset += width
            if offset == len(coef):
                parts = (
                    steps["features"],
                    blocks,
                    intercept,
                    float(calibrator.a_),
                    float(calibrator.b_),
                )
        self.__dict__["_fast"] = parts if parts is not None else ()
        return parts

    def _explain_parts(self) -> _ExplainParts:
        """What :meth:`analyse` reads from the fitted pipeline, looked up once per model.

        ``(features, blocks, coef, slope, lexical)``: per block of the union ``(step, offset of
        its columns, transformer weight, its column names)``, the regression's coefficients, the
        calibration slope and the names of the lexicon columns.
        """
        cached = self.__dict__.get("_explain")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        steps = self.pipeline.named_steps
        union: FeatureUnion = steps["union"]
        coef, _, slope = _linear_parts(self.pipeline)
        weights = union.transformer_weights or {}
        blocks: list[tuple[Any, int, float, Any]] = []
        lexical: set[str] = set()
        offset = 0
        for name, step in union.transformer_list:
            names = step.terms_ if isinstance(step, NgramTfidf) else step.get_feature_names_out()
            if isinstance(step, LexiconScaler):
                lexical.update(str(t) for t in names)
            blocks.append((step, offset, float(weights.get(name, 1.0)), names))
            offset += int(step.n_features_out_)
        parts = (steps["features"], blocks, coef, slope, frozenset(lexical))
        self.__dict__["_explain"] = parts
        return parts

    def score(self, listing: Any) -> float:
        """P(counterfeit) of one listing."""
        return float(self.predict_proba([listing])[0])

    def explain(self, listing: Any, top: int = 8) -> list[tuple[str, float]]:
        """The terms and features that pushed this listing's score up, largest first.

        Contributions are ``coefficient * feature value`` of the logistic regression, scaled to
        the calibrated logit. Word n-grams are named as they are (``"replica"``, ``"top batch"``);
        character n-grams are summed per word of the normalised text they occur in, named
        ``"~word"``; lexicon and price features keep their names followed by the phrases of the
        listing behind them (``"cue_grade: 1:1, AAA"``, ``"brand_obfuscated: L0uis Vu1tt0n"``,
        ``"price_discount"``).
        """
        return self.analyse([listing], top=top)[1][0]

    def analyse(
        self, listings: Sequence[Any], top: int = 8
    ) -> tuple[FloatArray, list[list[tuple[str, float]]]]:
        """:meth:`predict_proba` and :meth:`explain` of a batch in one pass.

        Each listing is normalised once and each feature block computed once for the whole
        batch (numpy over all the listings' n-grams, including the spreading of character
        n-grams over words), so explaining costs little more than scoring.
        """
        n = len(listings)
        if n == 0:
            return np.zeros(0, dtype=np.float64), []
        features, blocks, coef, slope, lexical = self._explain_parts()
        fast = self._fast_parts()
        found = [features.prepare_one(listing) for listing in listings]
        numeric = np.asarray([f[1] for f in found], dtype=np.float64)
        prepared = PreparedListings(
            [f[0] for f in found], numeric.reshape(n, len(NUMERIC_FEATURE_NAMES))
        )
        totals: list[dict[str, float]] = [{} for _ in range(n)]
        decision = np.full(n, fast[2]) if fast is not None else None
        for b, (step, offset, w, names) in enumerate(blocks):
            hits: CharHits | None = None
            if isinstance(step, NgramTfidf):
                if step.kind == "char":
                    hits = step._char_hits(prepared.texts)
                    rows, cols, values, occurrence = step._from_hits_where(hits.rows, hits.cols, n)
                else:
                    rows, cols, values, _ = step._triplets(prepared)
                if decision is not None and fast is not None:
                    block_coef = fast[1][b][1]
                    decision += np.bincount(rows, weights=values * block_coef[cols], minlength=n)
            else:
                if isinstance(step, LexiconScaler):
                    # transform() without scikit-learn's wrapper and a sparse matrix per call
                    dense = step._values(prepared) / step.scale_
                    if decision is not None and fast is not None:
                        decision += dense @ fast[1][b][1]  # step.decision(), computed once
                    rows, cols = (a.astype(np.intp) for a in np.nonzero(dense))
                    values = dense[rows, cols].astype(np.float64)
                else:
                    if decision is not None and fast is not None:
                        decision += step.decision(prepared, fast[1][b][1])
                    coo = sparse.coo_matrix(step.transform(prepared))
                    rows, cols, values = (
                        coo.row.astype(np.intp),
                        coo.col.astype(np.intp),
                        coo.data.astype(np.float64),
                    )
            contrib = values * w * coef[offset + cols] * slope
            if hits is not None:
                _add_word_shares(totals, hits, occurrence, contrib, prepared.texts)
            else:
                # Every other term occurs once per listing: only the positive ones can be named.
                up = contrib > 0
                for r, c, value in zip(
                    rows[up].tolist(), cols[up].tolist(), contrib[up].tolist(), strict=True
                ):
                    term = str(names[c])
                    row = totals[r]
                    row[term] = row.get(term, 0.0) + value
        if decision is not None and fast is not None:
            proba: FloatArray = 1.0 / (1.0 + np.exp(fast[3] * decision + fast[4]))
        else:
            proba = self.predict_proba(listings)
        explained: list[list[tuple[str, float]]] = []
        for i, row in enumerate(totals):
            ranked = sorted(((t, v) for t, v in row.items() if v > 0), key=lambda tv: -tv[1])
            ranked = ranked[:top]
            if any(t in lexical for t, _ in ranked):
                evidence = _evidence(found[i])
                ranked = [
                    (
                        f"{t}: {', '.join(evidence[t][:4])}"
                        if t in lexical and evidence.get(t)
                        else t,
                        v,
                    )
                    for t, v in ranked
                ]
            explained.append([(t, round(v, 4)) for t, v in ranked])
        return proba, explained


def _evidence(prepared: PreparedListing) -> dict[str, list[str]]:
    """Lexicon feature name -> the original phrases of the listing that feed it (from the spans
    :meth:`ListingFeatures.prepare_one` found)."""
    cues = default_cue_matcher()
    out: dict[str, list[str]] = {}

    def add(name: str, text: str) -> None:
        found = out.setdefault(name, [])
        if text not in found:
            found.append(text)

    for cue_spans, brand_spans, is_title in zip(
        prepared.cue_spans, prepared.brand_spans, (True, False), strict=True
    ):
        for sp in cue_spans:
            if sp.kind == "negated_cue":
                kind = "negated_genuine" if cues.cue(sp.label).kind == "genuine" else "negated_cue"
                add(kind, sp.text)
                if is_title and kind == "negated_cue":
                    add("title_negated_cue", sp.text)
            elif sp.kind == "genuine_cue":
                for name in ("genuine_cue", "genuine_weight", f"genuine_{sp.detail}"):
                    add(name, sp.text)
            else:
                strong = cues.cue(sp.label).strong
                for name in (
                    "cue_weight",
                    f"cue_{sp.detail}",
                    "cue_strong" if strong else "cue_weak",
                ):
                    add(name, sp.text)
                if is_title and strong:
                    add("title_cue_strong", sp.text)
        for sp in brand_spans:
            add("brand_mentions", sp.text)
            add("brand_distinct", sp.text)
            if is_title:
                add("title_brand", sp.text)
            if "obfuscated" in sp.detail:
                add("brand_obfuscated", sp.text)
            if "fuzzy" in sp.detail:
                add("brand_fuzzy", sp.text)
            if sp.detail in ("exact", "hashtag"):
                add("brand_exact", sp.text)
    return out


def _add_word_shares(
    totals: list[dict[str, float]],
    hits: CharHits,
    occurrence: npt.NDArray[np.intp],
    contrib: FloatArray,
    texts: Sequence[str],
) -> None:
    """Spread each character n-gram's contribution over the words it overlaps, sum per word.

    ``contrib``: the contributions of the sorted unique (listing, column) pairs of the block;
    ``hits``: every occurrence of those n-grams, ``occurrence`` the index of each one's pair
    (``_from_hits_where``). A column's contribution is
    shared equally among all (occurrence, overlapped word) pairs, and each listing gets
    ``"~word" -> sum of its shares``. Vectorised over the whole batch: the joined text has
    single spaces between words (whitespace is collapsed), so the words an n-gram overlaps are
    the consecutive word numbers from the first to the last non-space character it covers.
    """
    if len(hits.rows) == 0:
        return
    codes = np.frombuffer(hits.joined.encode("utf-32-le"), dtype=np.uint32)
    space = codes == 32
    word_start = ~space
    word_start[1:] &= space[:-1]
    words_before = np.cumsum(word_start)  # words started at or before each position
    starts = hits.starts
    first = words_before[starts] - (~space[starts]).astype(np.intp)
    last = words_before[starts + hits.sizes - 1] - 1
    span = np.maximum(last - first + 1, 0)
    owners = np.bincount(occurrence, weights=span, minlength=len(contrib))
    safe = np.where(owners > 0, owners, 1.0)
    share = (contrib / safe)[occurrence]
    n_words = int(words_before[-1]) if len(words_before) else 0
    word_total = np.zeros(n_words, dtype=np.float64)
    touched = np.zeros(n_words, dtype=bool)
    for k in range(int(span.max(initial=0))):
        more = span > k
        word = first[more] + k
        word_total += np.bincount(word, weights=share[more], minlength=n_words)
        touched[word] = True
    found = np.flatnonzero(touched)
    if len(texts) == 1:
        word_rows = [0] * len(found)
    else:
        # The listing of each word: texts were padded to " " + collapsed + " " and concatenated.
        ends = np.cumsum([len(" ".join(t.split())) + 2 for t in texts])
        word_rows = np.searchsorted(ends, np.flatnonzero(word_start)[found], side="right").tolist()
    names = hits.joined.split()
    for j, r, value in zip(found.tolist(), word_rows, word_total[found].tolist(), strict=True):
        row = totals[r]
        term = "~" + names[j]
        row[term] = row.get(term, 0.0) + value

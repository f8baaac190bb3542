"""Combine the signals of one listing into a score, a decision and the reasons.

The combination is transparent: a sum of terms in logit space,

    z = bias + w_text * logit(p_text) + w_image * [matched a brand's photo, seller not authorised]
        + w_hidden * [the photo's brand is hidden or changed in the text]
        + w_price * price_evidence(listing price / brand reference price)
        + w_authorised * [seller authorised for the suspected brand]

and ``score = sigmoid(z)``. Each reason carries its term as ``contribution`` (logit units; the
terms and the bias add up to ``logit(score)``), so a reviewer or an appealing seller can see what
moved the score. The weights live in ``detector/data/combiner.json`` with their rationale; they
are meant to be refitted on reviewers' decisions as those accumulate.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from detector.signals import ExchangeRates, compare_price, price_evidence, seller_authorised
from detector.text import BrandMatcher, BrandTerms, CueMatcher, ListingText, Span, find_spans

DECISIONS = ("allow", "review", "block")
#: Text probability from which the terms behind it are named in the reason.
EXPLAIN_FROM = 0.2


@dataclass(frozen=True)
class BrandProfile:
    """What the scorer knows of a registered brand."""

    id: str
    name: str
    aliases: tuple[str, ...] = ()
    authorized_sellers: frozenset[str] = frozenset()  # case-folded seller ids
    reference_price: tuple[float, str] | None = None  # (amount, currency)
    review_threshold: float | None = None
    block_threshold: float | None = None


@dataclass(frozen=True)
class ListingInput:
    listing_id: str
    seller_id: str
    title: str
    description: str = ""
    price_amount: float | None = None
    price_currency: str | None = None
    brand_claimed: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class ImageMatch:
    """A verified match of one listing image to one brand reference."""

    image_index: int
    brand_id: str
    reference_id: str
    distance: int
    variant: str
    confidence: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageEvidence:
    """What the image engine found for one listing image."""

    index: int
    matches: tuple[ImageMatch, ...] = ()
    error: tuple[str, str] | None = None  # (code, reason) when the image could not be used
    quality: float | None = None


@dataclass(frozen=True)
class Reason:
    signal: str
    detail: str
    contribution: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoredListing:
    listing_id: str
    score: float
    decision: str
    brand_id: str | None
    reasons: list[Reason]
    image_matches: list[ImageMatch]
    spans: list[dict[str, Any]]
    text_probability: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Weights:
    version: str
    bias: float
    text: float
    image_match: float
    hidden_brand: float
    price: float
    authorised_seller: float
    text_logit_clip: float = 6.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Weights:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


@cache
def default_weights() -> Weights:
    raw = resources.files("detector").joinpath("data/combiner.json").read_text("utf-8")
    return Weights.from_dict(json.loads(raw))


def _logit(p: float, clip: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return max(-clip, min(clip, math.log(p / (1 - p))))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class Thresholds:
    review: float = 0.5
    block: float = 0.85


TextScorer = Callable[[Sequence[Any]], Sequence[float] | Any]
TextExplainer = Callable[[dict[str, Any]], list[tuple[str, float]]]
#: A batch of texts -> (P(counterfeit) per text, the terms that pushed each one up).
TextAnalyser = Callable[
    [Sequence[dict[str, Any]]], tuple[Sequence[float] | Any, Sequence[list[tuple[str, float]]]]
]


class Scorer:
    """Scores listings from their text, image evidence, seller and price.

    Parameters
    ----------
    brands : sequence of BrandProfile
        The registered brands (their names and aliases are matched in the text).
    text_scorer : callable
        Maps a batch of ``{"title", "description"}`` dicts to P(counterfeit) from the text alone.
    text_explainer : callable, optional
        Names the terms that pushed one listing's text score up.
    text_analyser : callable, optional
        Both at once for a whole batch (``TextModel.analyse``); used instead of the two above
        when given, so a batch is scored and explained in one pass.
    model_version : str
        Version of the text model, reported with every verdict.
    """

    def __init__(
        self,
        brands: Sequence[BrandProfile],
        text_scorer: TextScorer,
        *,
        text_explainer: TextExplainer | None = None,
        text_analyser: TextAnalyser | None = None,
        model_version: str = "unversioned",
        rates: ExchangeRates | None = None,
        weights: Weights | None = None,
        thresholds: Thresholds | None = None,
        cues: CueMatcher | None = None,
    ) -> None:
        self.brands = {b.id: b for b in brands}
        self.text_scorer = text_scorer
        self.text_explainer = text_explainer
        self.text_analyser = text_analyser
        self.rates = rates or ExchangeRates.default()
        self.weights = weights or default_weights()
        self.thresholds = thresholds or Thresholds()
        self.model_version = f"text:{model_version}+combiner:{self.weights.version}"
        self.matcher = (
            BrandMatcher([BrandTerms(b.id, (b.name, *b.aliases)) for b in brands])
            if brands
            else None
        )
        self.cues = cues
        self._by_name = {
            name.casefold().strip(): b.id for b in brands for name in (b.name, *b.aliases)
        }

    # --- public -------------------------------------------------------------------------------

    def score_many(
        self, listings: Sequence[ListingInput], images: Sequence[Sequence[ImageEvidence]]
    ) -> list[ScoredListing]:
        if not listings:
            return []
        # Each field normalised and searched for cues once, for the text model and the spans.
        prepared = [ListingText.of(x.title, x.description or "", self.cues) for x in listings]
        terms: Sequence[list[tuple[str, float]]]
        if self.text_analyser is not None:
            found, terms = self.text_analyser(
                [
                    {"title": x.title, "description": x.description or "", "prepared": p}
                    for x, p in zip(listings, prepared, strict=True)
                ]
            )
            probabilities = list(found)
        else:
            texts = [{"title": x.title, "description": x.description or ""} for x in listings]
            probabilities = list(self.text_scorer(texts))
            explain = self.text_explainer
            terms = [explain(t) for t in texts] if explain is not None else [[] for _ in texts]
        return [
            self._score_one(listing, evidence, float(p), t, text)
            for listing, evidence, p, t, text in zip(
                listings, images, probabilities, terms, prepared, strict=True
            )
        ]

    def score(self, listing: ListingInput, images: Sequence[ImageEvidence] = ()) -> ScoredListing:
        return self.score_many([listing], [images])[0]

    # --- the combination ----------------------------------------------------------------------

    def _spans(self, text: ListingText) -> list[tuple[str, Span]]:
        out: list[tuple[str, Span]] = []
        for field_name, nt, cues in (
            ("title", text.title, text.title_cues),
            ("description", text.description, text.description_cues),
        ):
            if nt.original:
                found = find_spans(nt, self.matcher, text.cues, cue_spans=cues)
                out += [(field_name, s) for s in found]
        return out

    def _claimed_brand(self, listing: ListingInput) -> str | None:
        if not listing.brand_claimed:
            return None
        return self._by_name.get(listing.brand_claimed.casefold().strip())

    def _score_one(
        self,
        listing: ListingInput,
        images: Sequence[ImageEvidence],
        p_text: float,
        terms: list[tuple[str, float]],
        text: ListingText,
    ) -> ScoredListing:
        w = self.weights
        reasons: list[Reason] = []
        spans = self._spans(text)
        named = Counter(s.label for _, s in spans if s.kind == "brand")
        claimed = self._claimed_brand(listing)
        matches = sorted(
            (m for ev in images for m in ev.matches), key=lambda m: (-m.confidence, m.distance)
        )
        image_brand = matches[0].brand_id if matches else None
        text_brand = named.most_common(1)[0][0] if named else None
        suspected = image_brand or text_brand or claimed
        brand = self.brands.get(suspected) if suspected else None

        # text
        text_term = w.text * _logit(p_text, w.text_logit_clip)
        cue_spans = [s for _, s in spans if s.kind == "cue"]
        detail = f"text model gives {p_text:.2f}"
        if terms:
            detail += "; pushed up by " + "; ".join(t for t, c in terms[:4] if c > 0)
        reasons.append(
            Reason(
                "text",
                detail,
                round(text_term, 4),
                {
                    "probability": round(p_text, 4),
                    "terms": [[t, round(c, 3)] for t, c in terms[:8]],
                    "cues": [s.text for s in cue_spans],
                },
            )
        )

        authorised = brand is not None and seller_authorised(
            listing.seller_id, brand.authorized_sellers
        )

        # images
        for ev in images:
            if ev.error is not None:
                reasons.append(
                    Reason(
                        "image_unreadable",
                        f"image {ev.index} could not be used: {ev.error[1]}",
                        0.0,
                        {"image_index": ev.index, "code": ev.error[0]},
                    )
                )
        if matches:
            best = matches[0]
            matched_brand = self.brands.get(best.brand_id)
            bname = matched_brand.name if matched_brand else best.brand_id
            if authorised:
                reasons.append(
                    Reason(
                        "image_match",
                        f"image {best.image_index} is {bname}'s reference photo "
                        f"{best.reference_id} (the seller is authorised for {bname})",
                        0.0,
                        {"reference_id": best.reference_id, "distance": best.distance},
                    )
                )
            else:
                reasons.append(
                    Reason(
                        "image_match",
                        f"image {best.image_index} is {bname}'s official photo "
                        f"{best.reference_id} ({best.variant}, distance {best.distance}, "
                        f"confidence {best.confidence:.2f}) used by a seller not authorised "
                        f"for {bname}",
                        round(w.image_match * best.confidence, 4),
                        {
                            "reference_id": best.reference_id,
                            "distance": best.distance,
                            "confidence": round(best.confidence, 3),
                            **best.evidence,
                        },
                    )
                )
            mentioned = named.get(best.brand_id, 0) > 0 or claimed == best.brand_id
            if not mentioned and not authorised:
                other = text_brand or claimed
                if other and other != best.brand_id:
                    other_name = self.brands[other].name if other in self.brands else other
                    how = f"names {other_name} instead"
                else:
                    how = "does not name it"
                reasons.append(
                    Reason(
                        "hidden_brand",
                        f"the photo is {bname}'s but the listing text {how}",
                        round(w.hidden_brand, 4),
                        {"image_brand_id": best.brand_id, "text_brand_id": other},
                    )
                )

        # price
        if brand is not None and brand.reference_price is not None:
            cmp = compare_price(
                listing.price_amount,
                listing.price_currency,
                brand.reference_price[0],
                brand.reference_price[1],
                self.rates,
            )
            if cmp is not None:
                strength = price_evidence(cmp.ratio)
                reasons.append(
                    Reason(
                        "price",
                        cmp.describe()
                        + (
                            f" (rates as of {self.rates.as_of})"
                            if cmp.listing_currency != cmp.reference_currency
                            else ""
                        ),
                        round(w.price * strength, 4),
                        {
                            "ratio": round(cmp.ratio, 4),
                            "converted": round(cmp.converted_amount, 2),
                            "currency": cmp.reference_currency,
                        },
                    )
                )
            elif listing.price_amount is not None:
                reasons.append(
                    Reason(
                        "price",
                        f"price not compared: no exchange rate for "
                        f"{listing.price_currency} -> {brand.reference_price[1]}",
                        0.0,
                    )
                )

        # seller
        if brand is not None and authorised:
            reasons.append(
                Reason(
                    "authorised_seller",
                    f"seller {listing.seller_id} is an authorised seller of {brand.name}",
                    round(w.authorised_seller, 4),
                )
            )

        z = w.bias + sum(r.contribution for r in reasons)
        score = _sigmoid(z)
        review = brand.review_threshold if brand and brand.review_threshold is not None else None
        block = brand.block_threshold if brand and brand.block_threshold is not None else None
        review = self.thresholds.review if review is None else review
        block = self.thresholds.block if block is None else block
        decision = "block" if score >= block else "review" if score >= review else "allow"
        reasons.sort(key=lambda r: -abs(r.contribution))
        return ScoredListing(
            listing_id=listing.listing_id,
            score=round(score, 6),
            decision=decision,
            brand_id=suspected,
            reasons=reasons,
            image_matches=matches,
            spans=[
                {
                    "field": f,
                    "kind": s.kind,
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "label": s.label,
                    "detail": s.detail,
                }
                for f, s in spans
            ],
            text_probability=round(p_text, 6),
        )

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from detector.scorer import (
    BrandProfile,
    ImageEvidence,
    ImageMatch,
    ListingInput,
    Scorer,
    Thresholds,
)
from detector.signals import ExchangeRates

NIKE = BrandProfile(
    "b-nike",
    "Nike",
    ("耐克",),
    frozenset({"nike-official"}),
    (100.0, "USD"),
)
GUCCI = BrandProfile("b-gucci", "Gucci", (), frozenset(), (1000.0, "USD"), 0.3, 0.6)


def fixed_text(p: float) -> Any:
    def scorer(texts: Sequence[dict[str, Any]]) -> list[float]:
        return [p for _ in texts]

    return scorer


def make(p_text: float = 0.2) -> Scorer:
    return Scorer(
        [NIKE, GUCCI],
        fixed_text(p_text),
        model_version="t1",
        rates=ExchangeRates({"USD": 1, "CNY": 7}, "test"),
        thresholds=Thresholds(0.5, 0.85),
    )


def match(brand: str = "b-nike", confidence: float = 1.0) -> ImageEvidence:
    return ImageEvidence(0, (ImageMatch(0, brand, "ref-1", 3, "crop10", confidence),))


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_text_only_listing_scores_the_text_probability() -> None:
    v = make(0.2).score(ListingInput("l1", "s1", "plain leather wallet"))
    assert v.score == pytest.approx(0.2, abs=1e-4)
    assert v.decision == "allow" and v.brand_id is None
    assert [r.signal for r in v.reasons] == ["text"]
    assert v.text_probability == pytest.approx(0.2)


def test_contributions_add_up_to_the_score() -> None:
    v = make(0.3).score(
        ListingInput("l1", "s9", "great sneakers", price_amount=70, price_currency="CNY"),
        [match()],
    )
    z = sum(r.contribution for r in v.reasons)
    assert logit(v.score) == pytest.approx(z, abs=1e-3)
    signals = {r.signal for r in v.reasons}
    assert {"text", "image_match", "hidden_brand", "price"} <= signals
    assert v.brand_id == "b-nike" and v.decision == "block"
    price = next(r for r in v.reasons if r.signal == "price")
    assert "70.00 CNY" in price.detail and "10.00 USD" in price.detail and "10%" in price.detail


def test_authorised_seller_outweighs_an_image_match() -> None:
    v = make(0.5).score(ListingInput("l1", "NIKE-OFFICIAL", "Nike Air Max"), [match()])
    assert v.decision == "allow"
    auth = next(r for r in v.reasons if r.signal == "authorised_seller")
    assert auth.contribution < 0
    assert all(r.signal != "hidden_brand" for r in v.reasons)


def test_hidden_and_changed_brand() -> None:
    v = make(0.2).score(ListingInput("l1", "s1", "Gucci style shoes"), [match("b-nike")])
    hidden = next(r for r in v.reasons if r.signal == "hidden_brand")
    assert "names Gucci instead" in hidden.detail
    named = make(0.2).score(ListingInput("l2", "s1", "Nike shoes"), [match("b-nike")])
    assert all(r.signal != "hidden_brand" for r in named.reasons)


def test_brand_from_text_spans_and_claims() -> None:
    v = make(0.2).score(
        ListingInput("l1", "s1", "耐克 运动鞋", price_amount=20, price_currency="USD")
    )
    assert v.brand_id == "b-nike"
    assert any(s["kind"] == "brand" and s["text"] == "耐克" for s in v.spans)
    claimed = make(0.2).score(ListingInput("l2", "s1", "shoes", brand_claimed=" NIKE "))
    assert claimed.brand_id == "b-nike"


def test_per_brand_thresholds() -> None:
    v = make(0.4).score(ListingInput("l1", "s1", "Gucci belt"))
    assert v.brand_id == "b-gucci" and v.decision == "review"  # Gucci reviews from 0.3
    assert make(0.4).score(ListingInput("l2", "s1", "belt")).decision == "allow"


def test_unreadable_image_is_a_reason_not_a_failure() -> None:
    bad = ImageEvidence(1, error=("truncated", "the image data cannot be decoded"))
    v = make(0.2).score(ListingInput("l1", "s1", "wallet"), [bad])
    reason = next(r for r in v.reasons if r.signal == "image_unreadable")
    assert reason.contribution == 0 and reason.evidence["code"] == "truncated"


def test_unknown_currency_is_said_not_guessed() -> None:
    v = make(0.2).score(ListingInput("l1", "s1", "Nike", price_amount=5, price_currency="XYZ"))
    price = next(r for r in v.reasons if r.signal == "price")
    assert price.contribution == 0 and "no exchange rate" in price.detail


def test_a_batch_analyser_scores_and_explains_in_one_call() -> None:
    calls: list[int] = []

    def analyse(texts: Sequence[dict[str, Any]]) -> tuple[list[float], list[Any]]:
        calls.append(len(texts))
        return [0.9 for _ in texts], [[("replica", 1.5), ("~clone", 0.5)] for _ in texts]

    scorer = Scorer(
        [NIKE],
        fixed_text(0.1),  # not used when an analyser is given
        text_analyser=analyse,
        thresholds=Thresholds(0.5, 0.85),
    )
    out = scorer.score_many(
        [ListingInput(f"l{i}", "s1", "replica clone") for i in range(3)], [[], [], []]
    )
    assert calls == [3]
    assert all(v.text_probability == pytest.approx(0.9) for v in out)
    text = out[0].reasons[0]
    assert text.signal == "text" and "pushed up by replica; ~clone" in text.detail
    assert text.evidence["terms"] == [["replica", 1.5], ["~clone", 0.5]]

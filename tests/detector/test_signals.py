from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from detector.signals import (
    ExchangeRates,
    compare_price,
    price_evidence,
    seller_authorised,
)


def test_conversion_through_usd() -> None:
    rates = ExchangeRates({"USD": 1, "EUR": 0.5, "CNY": 8})
    assert rates.convert(10, "EUR", "USD") == pytest.approx(20)
    assert rates.convert(80, "cny", "eur") == pytest.approx(5)
    assert rates.convert(1, "XYZ", "USD") is None
    with pytest.raises(ValueError):
        ExchangeRates({"USD": 0})


def test_compare_like_with_like() -> None:
    rates = ExchangeRates({"USD": 1, "CNY": 7})
    cmp = compare_price(Decimal("700"), "CNY", Decimal("1000"), "USD", rates)
    assert cmp is not None
    assert cmp.ratio == pytest.approx(0.1)
    text = cmp.describe()
    assert "700.00 CNY" in text and "100.00 USD" in text and "1,000.00 USD" in text
    assert compare_price(50, "USD", None, None, rates) is None
    assert compare_price(50, "ZZZ", 100, "USD", rates) is None
    assert compare_price(0, "USD", 100, "USD", rates) is None


def test_price_evidence_is_monotone_and_bounded() -> None:
    values = [price_evidence(r) for r in (0.05, 0.15, 0.3, 0.5, 0.7, 1.0, 3.0)]
    assert values[0] == 1.0 and values[1] == 1.0
    assert values[-3:] == [0.0, 0.0, 0.0]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_seller_authorisation_is_exact() -> None:
    allowed = frozenset({"nike-official"})
    assert seller_authorised(" Nike-Official ", allowed)
    assert not seller_authorised("nike-official-outlet", allowed)

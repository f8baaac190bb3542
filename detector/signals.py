"""Seller and price signals, and the currency conversion they need.

Prices arrive in many currencies. A listing's price is compared with the brand's reference price
only after converting both into the reference price's currency through a configurable table of
exchange rates (units of the currency per 1 USD); the reason says what was compared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

#: Illustrative rates (units per 1 USD) used when no table is configured. They go stale:
#: production deployments set FAKEGUARD_FX_RATES (JSON) from their finance feed.
DEFAULT_RATES_AS_OF = "2026-11-01"
DEFAULT_RATES: dict[str, float] = {
    "USD": 1.0, "EUR": 0.92, "GBP": 0.79, "CNY": 7.2, "JPY": 150.0, "KRW": 1380.0,
    "HKD": 7.8, "TWD": 32.0, "SGD": 1.35, "IDR": 15800.0, "INR": 84.0, "THB": 35.0,
    "VND": 25000.0, "MYR": 4.5, "PHP": 57.0, "AUD": 1.52, "NZD": 1.67, "CAD": 1.37,
    "MXN": 18.0, "BRL": 5.6, "ARS": 950.0, "CLP": 940.0, "COP": 4100.0, "CHF": 0.88,
    "SEK": 10.6, "NOK": 10.8, "DKK": 6.9, "PLN": 4.0, "CZK": 23.0, "HUF": 360.0,
    "TRY": 34.0, "RUB": 95.0, "AED": 3.67, "SAR": 3.75, "ILS": 3.7, "ZAR": 18.0,
}  # fmt: skip


class ExchangeRates:
    """Currency conversion through USD. Unknown currencies convert to None, never to a guess."""

    def __init__(self, per_usd: Mapping[str, float], as_of: str = "unknown") -> None:
        bad = {c: r for c, r in per_usd.items() if not (isinstance(r, int | float) and r > 0)}
        if bad:
            raise ValueError(f"exchange rates must be positive numbers: {bad}")
        self.per_usd = {c.upper(): float(r) for c, r in per_usd.items()}
        self.as_of = as_of

    @classmethod
    def default(cls) -> ExchangeRates:
        return cls(DEFAULT_RATES, DEFAULT_RATES_AS_OF)

    def convert(self, amount: float, source: str, target: str) -> float | None:
        src, dst = self.per_usd.get(source.upper()), self.per_usd.get(target.upper())
        if src is None or dst is None:
            return None
        return amount / src * dst


@dataclass(frozen=True)
class PriceComparison:
    """A listing price set against a brand's reference price, in the reference's currency."""

    ratio: float  # listing price / reference price
    listing_amount: float
    listing_currency: str
    converted_amount: float
    reference_amount: float
    reference_currency: str

    def describe(self) -> str:
        conv = (
            ""
            if self.listing_currency == self.reference_currency
            else f" (= {self.converted_amount:,.2f} {self.reference_currency})"
        )
        return (
            f"price {self.listing_amount:,.2f} {self.listing_currency}{conv} is "
            f"{self.ratio:.0%} of the brand's reference price "
            f"{self.reference_amount:,.2f} {self.reference_currency}"
        )


def compare_price(
    amount: Decimal | float | None,
    currency: str | None,
    reference_amount: Decimal | float | None,
    reference_currency: str | None,
    rates: ExchangeRates,
) -> PriceComparison | None:
    """None when either price is missing or a currency is not in the rate table."""
    if amount is None or currency is None or reference_amount is None or not reference_currency:
        return None
    amount_f, ref_f = float(amount), float(reference_amount)
    if amount_f <= 0 or ref_f <= 0 or not math.isfinite(amount_f):
        return None
    converted = rates.convert(amount_f, currency, reference_currency)
    if converted is None:
        return None
    return PriceComparison(
        ratio=converted / ref_f,
        listing_amount=amount_f,
        listing_currency=currency.upper(),
        converted_amount=converted,
        reference_amount=ref_f,
        reference_currency=reference_currency.upper(),
    )


def price_evidence(ratio: float) -> float:
    """How strongly a price ratio suggests a fake, in [0, 1]: 0 at or above 70 % of retail,
    rising along log(ratio) to 1 at 15 % of retail or less. Weak on its own by design: fakes
    are sometimes priced near retail, and genuine goods are discounted."""
    hi, lo = 0.7, 0.15
    if ratio >= hi:
        return 0.0
    if ratio <= lo:
        return 1.0
    return math.log(hi / ratio) / math.log(hi / lo)


def authorised_sellers(seller_ids: Iterable[str]) -> frozenset[str]:
    """A brand's authorised seller ids as :func:`seller_authorised` compares them."""
    return frozenset(s.strip().casefold() for s in seller_ids)


def seller_authorised(seller_id: str, authorised: frozenset[str]) -> bool:
    """Exact match after trimming and case folding (marketplace seller ids are opaque);
    ``authorised`` as :func:`authorised_sellers` makes it."""
    return seller_id.strip().casefold() in authorised

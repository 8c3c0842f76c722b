"""Currencies Chorus takes donations in: minor units, limits and suggested amounts.

Amounts are always integers in the currency's minor unit, as Stripe expects. Zero-decimal
currencies (KRW, JPY, ...) have no minor unit: 10,000 KRW is sent to Stripe as 10000, not 1000000.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.i18n import money

# Stripe's zero-decimal currencies (https://docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)


@dataclass(frozen=True)
class CurrencyRules:
    code: str
    symbol: str
    minimum: int  # minor units
    maximum: int  # minor units
    presets: tuple[int, ...]  # minor units

    @property
    def exponent(self) -> int:
        return 0 if self.code in ZERO_DECIMAL else 2

    def to_minor(self, major: str) -> int:
        """Parse an amount typed by a person ("25", "25.50", "10,000") into minor units."""
        text = major.strip().replace(",", "").replace(" ", "").replace("\u00a0", "")
        if not text or text.count(".") > 1 or not text.replace(".", "").isdigit():
            raise ValueError("not a number")
        whole, _, fraction = text.partition(".")
        if len(fraction) > self.exponent:
            raise ValueError("too many decimals")
        scale = int(10**self.exponent)
        return int(whole or "0") * scale + int(fraction.ljust(self.exponent, "0") or 0)

    def format(self, minor: int, locale: str = "en") -> str:
        """`₩10,000`, `€25.00`; `25,00 EUR` in Ukrainian: as `locale` writes amounts (Babel)."""
        return money(minor, self.code, locale, exponent=self.exponent)


CURRENCIES: dict[str, CurrencyRules] = {
    rules.code: rules
    for rules in (
        CurrencyRules("KRW", "₩", 1_000, 10_000_000, (10_000, 30_000, 50_000, 100_000)),
        CurrencyRules("EUR", "€", 100, 1_000_000, (1_000, 2_500, 5_000, 10_000)),
        CurrencyRules("USD", "$", 100, 1_000_000, (1_000, 2_500, 5_000, 10_000)),
        CurrencyRules("UAH", "₴", 2_000, 40_000_000, (20_000, 50_000, 100_000, 200_000)),
        CurrencyRules("GBP", "£", 100, 1_000_000, (1_000, 2_500, 5_000, 10_000)),
        CurrencyRules("JPY", "¥", 100, 1_000_000, (1_000, 3_000, 5_000, 10_000)),
    )
}

# The currency a donate page offers first, by page language.
DEFAULT_FOR_LOCALE = {"ko": "KRW", "uk": "UAH", "en": "EUR"}

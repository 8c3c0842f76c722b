"""Currencies Chorus takes donations in: minor units, limits and suggested amounts.

Amounts are always integers in the currency's minor unit, as Stripe expects. Zero-decimal
currencies (KRW, JPY, ...) have no minor unit: 10,000 KRW is sent to Stripe as 10000, not 1000000.

An amount a person types is read in the language of the page they typed it on (Babel's number
rules): "25,50" on a Ukrainian page is 25.50, "1,000" on an English page is one thousand. What
could be read two ways is refused rather than guessed, so nobody is charged 100 times too much.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from babel import Locale
from babel.numbers import (
    NumberFormatError,
    format_decimal,
    get_decimal_symbol,
    get_group_symbol,
    parse_decimal,
)

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


class AmountError(ValueError):
    """A typed amount that cannot be read; `type` is a stable error type for translations."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_


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

    def to_minor(self, major: str, *, locale: str) -> int:
        """Parse an amount typed by a person on a page in `locale` into minor units.

        "25,50" in uk and "25.50" or "1,000" in en are read as Babel reads numbers in those
        languages (strictly: misplaced separators are refused). Raises AmountError: type
        `amount_invalid` for what is not a positive number, `amount_ambiguous` for what could be
        read two ways ("1.000,5" on an English page; "1,000" on a Ukrainian page, where the
        comma marks decimals and UAH has two of them).
        """
        language = Locale.parse(locale)
        group = get_group_symbol(language)
        text = major.strip()
        if group.isspace():
            # People type an ordinary space where the language groups digits with a
            # no-break or narrow space ("1 000" in Ukrainian).
            text = " ".join(text.split()).replace(" ", group)
        allowed = {group, get_decimal_symbol(language), ".", ","}
        if not text or not all(char.isdecimal() or char in allowed for char in text):
            raise AmountError("amount_invalid", "Enter the amount as a number")
        try:
            value = parse_decimal(text, locale=language, strict=True)
        except NumberFormatError:
            raise AmountError(
                "amount_ambiguous", f"{major.strip()!r} can be read as more than one amount"
            ) from None
        exponent = value.as_tuple().exponent
        if not value.is_finite() or value.is_signed() or not isinstance(exponent, int):
            raise AmountError("amount_invalid", "Enter the amount as a number")
        if -exponent > self.exponent:
            # More decimals than the currency has: a thousands separator read as a decimal
            # point ("1,000" in uk, "10.000" for KRW), or a typo. Either way, not a guess.
            raise AmountError(
                "amount_ambiguous",
                f"{major.strip()!r} can be read as more than one amount: {self.code} has "
                + (f"{self.exponent} decimals" if self.exponent else "no decimals"),
            )
        return int(value.scaleb(self.exponent))

    def example(self, locale: str) -> str:
        """How to type an amount in this currency on a page in `locale`: `25.50`, `25,50`,
        `10000` (no thousands separator, so it cannot be misread)."""
        sample = Decimal("25.50") if self.exponent else Decimal(10_000)
        return format_decimal(
            sample, format="0." + "0" * self.exponent if self.exponent else "0", locale=locale
        )

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

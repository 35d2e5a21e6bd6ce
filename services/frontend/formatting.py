"""Money as shoppers read it: `$1,234.56`. Computed from units and nanos through Decimal, never float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from services.common.money import Money

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$"}
CENT = Decimal("0.01")


def format_money(amount: Money) -> str:
    """The amount rounded half-even to the cent, with the currency's symbol (or its code after)."""
    value = amount.to_decimal().quantize(CENT, rounding=ROUND_HALF_EVEN)
    sign = "-" if value < 0 else ""
    digits = f"{abs(value):,.2f}"
    symbol = CURRENCY_SYMBOLS.get(amount.currency_code)
    if symbol is None:
        return f"{sign}{digits} {amount.currency_code}"
    return f"{sign}{symbol}{digits}"

"""The shipping rule: a base fee per order plus a fee per unit, free for a large enough order.

    shipping = 0                                   when the subtotal is FREE_FROM (150.00 USD) or more
    shipping = BASE_FEE + PER_UNIT_FEE * units     otherwise (4.99 USD + 0.99 USD a unit)

The rule is deterministic: the same cart always ships for the same amount. Fees are in USD, the
catalog's only currency.
"""

from __future__ import annotations

from decimal import Decimal

from services.common.money import Money

CURRENCY = "USD"
BASE_FEE = Decimal("4.99")
PER_UNIT_FEE = Decimal("0.99")
FREE_FROM = Decimal("150.00")


def shipping_cost(subtotal: Money, units: int) -> Money:
    """The shipping cost of `units` units worth `subtotal` in all."""
    if subtotal.currency_code != CURRENCY:
        raise ValueError(f"shipping is priced in {CURRENCY}, not {subtotal.currency_code}")
    if units < 1:
        raise ValueError("an order ships at least one unit")
    if subtotal.to_decimal() >= FREE_FROM:
        return Money.zero(CURRENCY)
    return Money.from_decimal(BASE_FEE + PER_UNIT_FEE * units, CURRENCY)

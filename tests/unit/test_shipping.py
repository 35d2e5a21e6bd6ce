"""The shipping rule: 4.99 USD plus 0.99 USD a unit, free from a 150.00 USD subtotal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.checkout.shipping import shipping_cost
from services.common.money import Money


def usd(amount: str) -> Money:
    return Money.from_decimal(amount)


@pytest.mark.parametrize(
    ("subtotal", "units", "expected"),
    [
        ("0.99", 1, "5.98"),
        ("43.90", 2, "6.97"),
        ("149.99", 3, "7.96"),
        ("103.94", 3, "7.96"),
        ("99.00", 100, "103.99"),
    ],
)
def test_a_small_order_pays_the_base_fee_plus_a_fee_per_unit(
    subtotal: str, units: int, expected: str
) -> None:
    cost = shipping_cost(usd(subtotal), units)
    assert cost == usd(expected)
    assert cost.currency_code == "USD"


@pytest.mark.parametrize("subtotal", ["150.00", "150.01", "3599.00"])
def test_an_order_of_150_dollars_or_more_ships_free(subtotal: str) -> None:
    assert shipping_cost(usd(subtotal), 7).to_decimal() == Decimal(0)


def test_the_same_cart_always_ships_for_the_same_amount() -> None:
    assert {shipping_cost(usd("21.95"), 2) for _ in range(5)} == {usd("6.97")}


def test_an_order_without_units_cannot_be_shipped() -> None:
    with pytest.raises(ValueError, match="at least one unit"):
        shipping_cost(usd("10.00"), 0)


def test_a_subtotal_in_another_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="priced in USD"):
        shipping_cost(Money.from_decimal("10.00", "EUR"), 1)

"""How the storefront shows money: from units and nanos, rounded half-even to the cent."""

from __future__ import annotations

import pytest

from services.common.money import Money
from services.frontend.formatting import format_money


@pytest.mark.parametrize(
    ("units", "nanos", "currency", "shown"),
    [
        (101, 960_000_000, "USD", "$101.96"),
        (0, 990_000_000, "USD", "$0.99"),
        (3599, 0, "USD", "$3,599.00"),
        (1_234_567, 890_000_000, "USD", "$1,234,567.89"),
        (0, 5_000_000, "USD", "$0.00"),
        (0, 15_000_000, "USD", "$0.02"),
        (19, 999_999_999, "USD", "$20.00"),
        (-5, -500_000_000, "USD", "-$5.50"),
        (12, 500_000_000, "EUR", "€12.50"),
        (12, 500_000_000, "CHF", "12.50 CHF"),
    ],
)
def test_money_is_shown_with_its_symbol_rounded_half_even_to_the_cent(
    units: int, nanos: int, currency: str, shown: str
) -> None:
    assert format_money(Money(currency_code=currency, units=units, nanos=nanos)) == shown


def test_amounts_too_precise_for_a_float_keep_every_cent() -> None:
    assert format_money(Money(currency_code="USD", units=90_071_992_547_409, nanos=930_000_000)) == (
        "$90,071,992,547,409.93"
    )

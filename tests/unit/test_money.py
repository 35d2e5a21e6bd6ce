"""Money keeps exact amounts: no float ever touches a price."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.common.money import Money


def test_decimal_amounts_round_trip_exactly() -> None:
    price = Money.from_decimal("19.99")
    assert (price.units, price.nanos) == (19, 990_000_000)
    assert price.to_decimal() == Decimal("19.99")


def test_adding_and_multiplying_is_exact_where_floats_drift() -> None:
    total = Money.from_decimal("0.10") + Money.from_decimal("0.20")
    assert total.to_decimal() == Decimal("0.3")
    assert Money.from_decimal("33.33").times(3).to_decimal() == Decimal("99.99")


def test_negative_amounts_carry_the_sign_in_units_and_nanos() -> None:
    refund = Money.from_decimal("-1.25")
    assert (refund.units, refund.nanos) == (-1, -250_000_000)
    assert not refund.is_positive()


def test_mixed_currencies_cannot_be_added() -> None:
    with pytest.raises(ValueError, match="EUR"):
        Money.from_decimal("1", "USD") + Money.from_decimal("1", "EUR")


@pytest.mark.parametrize(
    "fields",
    [
        {"currency_code": "usd", "units": 1},
        {"currency_code": "USD", "units": 1, "nanos": -1},
        {"currency_code": "USD", "units": 0, "nanos": 1_000_000_000},
    ],
    ids=["lower-case-currency", "mixed-signs", "nanos-overflow"],
)
def test_malformed_money_is_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Money.model_validate(fields)


def test_money_prints_as_a_price() -> None:
    assert str(Money.from_decimal("1234.5")) == "1234.50 USD"

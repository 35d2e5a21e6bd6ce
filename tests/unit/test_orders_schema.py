"""OrderPlaced is versioned: consumers read v1 and refuse what they cannot read, by name."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.common.money import Money
from services.common.orders import Address, OrderItem, OrderPlaced, UnreadableEvent, decode, encode


def an_order() -> OrderPlaced:
    price = Money.from_decimal("10.50")
    return OrderPlaced(
        order_id="o-1",
        user_id="u-1",
        email="someone@example.com",
        items=[OrderItem(product_id="OLJCESPC7Z", quantity=2, unit_price=price)],
        shipping_address=Address(street_address="1 Main St", city="Springfield", country="US", zip_code="1"),
        shipping_cost=Money.from_decimal("5"),
        total=Money.from_decimal("26"),
        transaction_id="t-1",
        placed_at=datetime(2026, 11, 25, tzinfo=UTC),
    )


def test_an_order_survives_encoding() -> None:
    order = an_order()
    assert decode(encode(order)) == order
    assert json.loads(encode(order))["schema_version"] == 1


@pytest.mark.parametrize(
    "value",
    [b"", b"not json", json.dumps({"schema_version": 2}).encode()],
    ids=["empty", "garbage", "future-version"],
)
def test_unreadable_messages_are_refused_by_name(value: bytes) -> None:
    with pytest.raises(UnreadableEvent):
        decode(value)

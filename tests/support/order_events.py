"""`OrderPlaced` events for the consumer tests, published to the real broker as checkout publishes them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from services.common.kafka import Publisher
from services.common.money import Money
from services.common.orders import (
    ORDERS_TOPIC,
    Address,
    OrderItem,
    OrderPlaced,
    encode,
    schema_header,
)

ADDRESS = Address(
    street_address="1600 Amphitheatre Parkway",
    city="Mountain View",
    state="CA",
    country="United States",
    zip_code="94043",
)

Message = tuple[str, bytes, Sequence[tuple[str, bytes]]]


def order_event(
    items: Sequence[tuple[str, int, str]] = (("OLJCESPC7Z", 2, "101.96"),), **fields: Any
) -> OrderPlaced:
    """A consistent order (its total is its items plus shipping) with a new order id."""
    lines = [
        OrderItem(product_id=product_id, quantity=quantity, unit_price=Money.from_decimal(price))
        for product_id, quantity, price in items
    ]
    shipping = Money.from_decimal("8.99")
    values: dict[str, Any] = {
        "order_id": str(uuid.uuid4()),
        "user_id": "tester",
        "email": "shopper@example.com",
        "items": lines,
        "shipping_address": ADDRESS,
        "shipping_cost": shipping,
        "total": sum((line.unit_price.times(line.quantity) for line in lines), start=shipping),
        "transaction_id": str(uuid.uuid4()),
        "placed_at": datetime.now(UTC),
        **fields,
    }
    return OrderPlaced(**values)


def as_message(order: OrderPlaced, *headers: tuple[str, bytes]) -> Message:
    return order.order_id, encode(order), [schema_header(), *headers]


def publish(bootstrap: str, messages: Iterable[Message]) -> None:
    """Publish `messages` to topic `orders`, in order, each acknowledged by the broker."""

    async def send_all() -> None:
        async with Publisher(bootstrap, client_id="tests") as publisher:
            for key, value, headers in messages:
                await publisher.publish(ORDERS_TOPIC, key, value, headers)

    asyncio.run(send_all())


def publish_orders(bootstrap: str, orders: Iterable[OrderPlaced]) -> None:
    publish(bootstrap, (as_message(order) for order in orders))

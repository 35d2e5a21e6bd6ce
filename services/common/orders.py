"""`OrderPlaced`, the event checkout publishes to topic `orders`: a versioned JSON schema.

A consumer accepts the versions it knows and rejects others by name, so a producer that moves to
version 2 cannot be misread by an old consumer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.common.money import Money

ORDERS_TOPIC = "orders"
SCHEMA_HEADER = "schema"
SCHEMA_NAME = "shopstack.OrderPlaced"
SCHEMA_VERSION = 1


class Address(BaseModel):
    model_config = ConfigDict(strict=True)

    street_address: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    state: str = Field(default="", max_length=100)
    country: str = Field(min_length=2, max_length=100)
    zip_code: str = Field(min_length=1, max_length=20)


class OrderItem(BaseModel):
    product_id: str
    quantity: int = Field(gt=0)
    unit_price: Money


class OrderPlaced(BaseModel):
    schema_version: Literal[1] = 1
    order_id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=128)
    email: str
    items: list[OrderItem] = Field(min_length=1)
    shipping_address: Address
    shipping_cost: Money
    total: Money
    transaction_id: str
    placed_at: datetime


class UnreadableEvent(Exception):
    """A message that no retry can make readable: it is skipped, counted and logged."""


def schema_header() -> tuple[str, bytes]:
    return SCHEMA_HEADER, f"{SCHEMA_NAME}/v{SCHEMA_VERSION}".encode()


def encode(order: OrderPlaced) -> bytes:
    return order.model_dump_json().encode()


def decode(value: bytes | None) -> OrderPlaced:
    if not value:
        raise UnreadableEvent("empty message")
    try:
        return OrderPlaced.model_validate_json(value)
    except ValidationError as err:
        raise UnreadableEvent(f"not an {SCHEMA_NAME} v{SCHEMA_VERSION}: {err}") from err

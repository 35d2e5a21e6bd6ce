"""checkout's request and response bodies, and the peers' answers it reads."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.common.money import Money
from services.common.orders import Address, OrderItem

USER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class CreditCard(BaseModel):
    number: str = Field(pattern=r"^\d{12,19}$", examples=["4432801561520454"])
    cvv: str = Field(pattern=r"^\d{3,4}$")
    expiration_year: int = Field(ge=2000, le=2100)
    expiration_month: int = Field(ge=1, le=12)


class CheckoutRequest(BaseModel):
    user_id: str = Field(pattern=USER_ID_PATTERN)
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN, examples=["someone@example.com"])
    address: Address
    credit_card: CreditCard


class Order(BaseModel):
    order_id: str
    items: list[OrderItem]
    shipping_address: Address
    shipping_cost: Money
    total: Money
    transaction_id: str
    placed_at: datetime


class CartLine(BaseModel):
    product_id: str
    quantity: int = Field(gt=0)


class Cart(BaseModel):
    """cart's answer to GET /carts/<user_id>."""

    items: list[CartLine]


class PricedProduct(BaseModel):
    """The part of product-catalog's Product that checkout needs."""

    id: str
    price: Money


class Charge(BaseModel):
    """payment's answer to POST /charges."""

    transaction_id: str

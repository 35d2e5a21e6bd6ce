"""frontend's JSON API bodies and the peers' answers it reads.

The frontend's image holds only this package and services/common, so the peers' shapes are declared
here, as the brief's contracts state them, rather than imported from the peers' packages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator

from services.common.money import Money
from services.common.orders import Address, OrderItem

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
MAX_QUANTITY_PER_ADD = 100
MAX_RECOMMENDATION_EXCLUSIONS = 100


class Product(BaseModel):
    id: str = Field(examples=["OLJCESPC7Z"])
    name: str
    description: str
    picture: str = Field(description="File name under /static/products/", examples=["OLJCESPC7Z.svg"])
    price: Money
    categories: list[str]


class ProductList(BaseModel):
    products: list[Product]


class ProductQuery(BaseModel):
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = Field(
        default=None, description="Search the name, description and categories", examples=["telescope"]
    )


class RecommendationQuery(BaseModel):
    product_ids: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^[A-Za-z0-9_, -]*$",
        description="Comma-separated ids of the products to leave out, e.g. the one in view.",
        examples=["OLJCESPC7Z,66VCHSJNUP"],
    )

    @field_validator("product_ids")
    @classmethod
    def _not_too_many(cls, value: str | None) -> str | None:
        if value is not None and value.count(",") >= MAX_RECOMMENDATION_EXCLUSIONS:
            raise ValueError(f"at most {MAX_RECOMMENDATION_EXCLUSIONS} product ids")
        return value

    def excluded(self) -> list[str]:
        """The given ids; blanks and spaces around the commas are ignored."""
        return [part.strip() for part in (self.product_ids or "").split(",") if part.strip()]


class AddItem(BaseModel):
    product_id: str = Field(pattern=ID_PATTERN, examples=["OLJCESPC7Z"])
    quantity: int = Field(ge=1, le=MAX_QUANTITY_PER_ADD)


class CartLine(BaseModel):
    product_id: str
    quantity: int = Field(ge=1)


class Cart(BaseModel):
    user_id: str = Field(description="The session id: each session has its own cart")
    items: list[CartLine]


class CreditCard(BaseModel):
    number: str = Field(pattern=r"^\d{12,19}$", examples=["4432801561520454"])
    cvv: str = Field(pattern=r"^\d{3,4}$", examples=["672"])
    expiration_year: int = Field(ge=2000, le=2100, examples=[2030])
    expiration_month: int = Field(ge=1, le=12, examples=[1])


class PlaceOrder(BaseModel):
    """The checkout form: who to bill and ship to, and the card to charge."""

    email: str = Field(max_length=254, pattern=EMAIL_PATTERN, examples=["someone@example.com"])
    address: Address
    credit_card: CreditCard


class CheckoutRequest(PlaceOrder):
    """What checkout takes: the form, for the session's cart."""

    user_id: str = Field(pattern=ID_PATTERN)


class Order(BaseModel):
    order_id: str
    items: list[OrderItem]
    shipping_address: Address
    shipping_cost: Money
    total: Money
    transaction_id: str
    placed_at: datetime

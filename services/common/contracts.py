"""The request and response shapes exchanged between services: declared once, used by the service that
serves them and by the services that call it.

Address and OrderItem belong to the `OrderPlaced` event contract (services.common.orders); the shapes
here that carry them import them from there. A service's own query models stay in its package.

The request bodies are strict: a JSON `true` is not 1, `"2"` is not 2 and `2.0` is not 2 (an HTML form,
whose values are all text, is read with `model_validate(..., strict=False)`). What a field's own rules
cannot say, such as a card number's checksum or a card's expiry, its schema says for the callers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from services.common.money import Money
from services.common.orders import Address, OrderItem

# A user id (the frontend's session id), or a product id as a request to cart or frontend names it.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# A product id as product-catalog issues it.
CATALOG_ID_PATTERN = r"^[A-Z0-9]{10}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
MAX_QUANTITY_PER_ADD = 100
# The most units of one product a cart holds: adds beyond it are refused, the line unchanged.
MAX_LINE_QUANTITY = 1000
# The card numbers payment charges: VISA or MasterCard, passing the Luhn check (a JSON Schema "format").
CARD_NUMBER_FORMAT = "payment-card"
MAX_RECOMMENDATION_EXCLUSIONS = 100

_ID = re.compile(ID_PATTERN)


def valid_user_id(user_id: str) -> bool:
    """Whether `user_id` follows the user id rule: 1 to 64 of A-Z, a-z, 0-9, _ and -."""
    return _ID.fullmatch(user_id) is not None


# product-catalog: GET /products, /products/search, /products/<id>; recommendation: GET /recommendations.

Category = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,39}$")]


class Product(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=CATALOG_ID_PATTERN, examples=["OLJCESPC7Z"])
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=2000)
    picture: str = Field(
        pattern=r"^[A-Z0-9]{10}\.svg$",
        description="File name under /static/products/",
        examples=["OLJCESPC7Z.svg"],
    )
    price: Money
    categories: list[Category] = Field(min_length=1)


class ProductList(BaseModel):
    products: list[Product]


class RecommendationQuery(BaseModel):
    product_ids: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^[A-Za-z0-9_, -]*$",
        description="Comma-separated ids of the products to leave out, e.g. those in view or in the cart.",
        examples=["OLJCESPC7Z,66VCHSJNUP"],
    )

    @field_validator("product_ids")
    @classmethod
    def _not_too_many(cls, value: str | None) -> str | None:
        if value is not None and value.count(",") >= MAX_RECOMMENDATION_EXCLUSIONS:
            raise ValueError(f"at most {MAX_RECOMMENDATION_EXCLUSIONS} product ids")
        return value

    def excluded(self) -> frozenset[str]:
        """The given ids; blanks and spaces around the commas are ignored."""
        return frozenset(part.strip() for part in (self.product_ids or "").split(",") if part.strip())


# cart: GET /carts/<user_id>, POST /carts/<user_id>/items.


class AddItem(BaseModel):
    model_config = ConfigDict(strict=True)

    product_id: str = Field(pattern=ID_PATTERN, examples=["OLJCESPC7Z"])
    quantity: int = Field(
        ge=1,
        le=MAX_QUANTITY_PER_ADD,
        description=f"Units to add; a line holds at most {MAX_LINE_QUANTITY} (more is a 400 naming quantity)",
    )


class CartLine(BaseModel):
    product_id: str
    quantity: int = Field(ge=1)


class Cart(BaseModel):
    user_id: str = Field(description="Whose cart: the frontend's session id, so each session has one")
    items: list[CartLine]


# payment: POST /charges, GET /charges/<transaction_id>.


def _not_expired(schema: dict[str, Any]) -> None:
    """Document the expiry payment accepts, as of the moment the schema is served: this month or later."""
    today = datetime.now(UTC).date()
    schema["properties"]["expiration_year"]["minimum"] = today.year
    schema["if"] = {"properties": {"expiration_year": {"const": today.year}}}
    schema["then"] = {"properties": {"expiration_month": {"minimum": today.month}}}


class CreditCard(BaseModel):
    """A card payment charges: a VISA or MasterCard number that passes the Luhn check, not expired."""

    model_config = ConfigDict(strict=True, json_schema_extra=_not_expired)

    number: str = Field(
        pattern=r"^\d{12,19}$",
        description="VISA (4...) or MasterCard (51-55, 2221-2720) number that passes the Luhn check",
        examples=["4432801561520454"],
        json_schema_extra={"format": CARD_NUMBER_FORMAT},
    )
    cvv: str = Field(pattern=r"^\d{3,4}$", examples=["672"])
    expiration_year: int = Field(ge=2000, le=2100, examples=[2030])
    expiration_month: int = Field(ge=1, le=12, examples=[1])


class ChargeRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    idempotency_key: str = Field(min_length=1, max_length=128)
    amount: Money = Field(
        description="More than zero",
        json_schema_extra={
            "properties": {"units": {"minimum": 0}, "nanos": {"minimum": 0}},
            "anyOf": [{"properties": {"units": {"minimum": 1}}}, {"properties": {"nanos": {"minimum": 1}}}],
        },
    )
    credit_card: CreditCard

    @field_validator("amount")
    @classmethod
    def _positive(cls, amount: Money) -> Money:
        if not amount.is_positive():
            raise ValueError("must be more than zero")
        return amount


class ChargeResponse(BaseModel):
    transaction_id: str
    amount: Money
    card_type: str
    card_last4: str
    status: str


# checkout: POST /checkout (frontend takes PlaceOrder and adds the session's user id).


class PlaceOrder(BaseModel):
    """The checkout form: who to bill and ship to, and the card to charge."""

    model_config = ConfigDict(strict=True)

    email: str = Field(max_length=254, pattern=EMAIL_PATTERN, examples=["someone@example.com"])
    address: Address
    credit_card: CreditCard


class CheckoutRequest(PlaceOrder):
    """What checkout takes: the form, for the user's cart."""

    user_id: str = Field(pattern=ID_PATTERN)


class Order(BaseModel):
    order_id: str
    items: list[OrderItem]
    shipping_address: Address
    shipping_cost: Money
    total: Money
    transaction_id: str
    placed_at: datetime

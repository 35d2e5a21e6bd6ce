"""Bad input over HTTP, against the real cart, payment and frontend processes: every kind is a 4xx JSON
error naming the field at fault, and the cart it was aimed at is unchanged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.common.bodies import MAX_BODY_BYTES
from services.common.contracts import MAX_LINE_QUANTITY, MAX_QUANTITY_PER_ADD
from services.common.money import MAX_UNITS
from tests.support.shop import Shop
from tests.support.shopper import ADDRESS, VISA

TELESCOPE = "OLJCESPC7Z"
NOT_UTF8 = b'{"product_id": "OLJCESPC7Z", "quantity": 1, "note": "\xff\xfe"}'


@pytest.fixture(scope="module")
def cart(shop: Shop) -> httpx.Client:
    shop.ensure("cart")
    return httpx.Client(base_url=shop.url("cart"), timeout=10)


@pytest.fixture(scope="module")
def payment(shop: Shop) -> httpx.Client:
    shop.ensure("payment")
    return httpx.Client(base_url=shop.url("payment"), timeout=10)


@pytest.fixture
def shopper(shop: Shop) -> Iterator[httpx.Client]:
    shop.ensure("frontend")
    with httpx.Client(base_url=shop.url("frontend"), timeout=30) as client:
        yield client


@pytest.fixture
def user(cart: httpx.Client) -> str:
    """A user whose cart holds two telescopes."""
    name = f"user-{uuid.uuid4().hex[:12]}"
    assert cart.post(f"/carts/{name}/items", json={"product_id": TELESCOPE, "quantity": 2}).status_code == 200
    return name


def lines(cart: httpx.Client, user: str) -> dict[str, int]:
    return {line["product_id"]: line["quantity"] for line in cart.get(f"/carts/{user}").json()["items"]}


def refused(response: httpx.Response, status: int, field: str) -> None:
    """`response` is a JSON error with `status` whose fields name `field`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert field in [entry["field"] for entry in body["fields"]], body


@pytest.mark.parametrize("quantity", [-1, 0, 1.5, 2.0, True, "2", None, MAX_QUANTITY_PER_ADD + 1])
def test_a_quantity_that_is_not_a_whole_number_in_range_is_refused(
    cart: httpx.Client, user: str, quantity: Any
) -> None:
    response = cart.post(f"/carts/{user}/items", json={"product_id": TELESCOPE, "quantity": quantity})
    refused(response, 400, "quantity")
    assert lines(cart, user) == {TELESCOPE: 2}


@pytest.mark.parametrize(
    "body", [b'[{"product_id": "OLJCESPC7Z", "quantity": 1}]', b"1", b'"x"', b"null", b""]
)
def test_a_body_that_is_not_a_json_object_is_refused(cart: httpx.Client, user: str, body: bytes) -> None:
    response = cart.post(f"/carts/{user}/items", content=body, headers={"Content-Type": "application/json"})
    refused(response, 400, "body")
    assert lines(cart, user) == {TELESCOPE: 2}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_json_body_not_declared_as_json_is_a_415(
    cart: httpx.Client, user: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    content = b'{"product_id": "OLJCESPC7Z", "quantity": 1}'
    response = cart.post(f"/carts/{user}/items", content=content, headers=headers)
    refused(response, 415, "Content-Type")
    assert lines(cart, user) == {TELESCOPE: 2}


def test_a_body_that_is_not_utf8_is_a_400_naming_the_body(cart: httpx.Client, user: str) -> None:
    headers = {"Content-Type": "application/json"}
    refused(cart.post(f"/carts/{user}/items", content=NOT_UTF8, headers=headers), 400, "body")
    assert lines(cart, user) == {TELESCOPE: 2}


def test_a_body_that_is_not_json_is_a_400_naming_the_body(cart: httpx.Client, user: str) -> None:
    headers = {"Content-Type": "application/json"}
    refused(cart.post(f"/carts/{user}/items", content=b'{"quantity": 1', headers=headers), 400, "body")
    assert lines(cart, user) == {TELESCOPE: 2}


def test_an_oversized_body_is_a_413_naming_the_body(cart: httpx.Client, user: str) -> None:
    body = {"product_id": TELESCOPE, "quantity": 1, "padding": "x" * MAX_BODY_BYTES}
    refused(cart.post(f"/carts/{user}/items", json=body), 413, "body")
    assert lines(cart, user) == {TELESCOPE: 2}


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        "00-xyz-abc-01",
        "00-00000000000000000000000000000000-0000000000000000-01",
        "ff-" + "a" * 32 + "-" + "b" * 16 + "-01",
        "00-" + "a" * 32 + "-" + "b" * 16 + "-01-extra-" + "z" * 500,
    ],
)
def test_a_malformed_traceparent_is_ignored(cart: httpx.Client, user: str, traceparent: str) -> None:
    response = cart.post(
        f"/carts/{user}/items",
        json={"product_id": TELESCOPE, "quantity": 1},
        headers={"traceparent": traceparent, "tracestate": "=,=;;"},
    )
    assert response.status_code == 200
    assert lines(cart, user) == {TELESCOPE: 3}


def test_a_line_cannot_grow_past_its_cap(cart: httpx.Client, user: str) -> None:
    room = MAX_LINE_QUANTITY - 2
    while room:
        step = min(room, MAX_QUANTITY_PER_ADD)
        add = cart.post(f"/carts/{user}/items", json={"product_id": TELESCOPE, "quantity": step})
        assert add.status_code == 200
        room -= step
    assert lines(cart, user) == {TELESCOPE: MAX_LINE_QUANTITY}
    response = cart.post(f"/carts/{user}/items", json={"product_id": TELESCOPE, "quantity": 1})
    refused(response, 400, "quantity")
    assert str(MAX_LINE_QUANTITY) in response.json()["error"]
    assert lines(cart, user) == {TELESCOPE: MAX_LINE_QUANTITY}


def charge(payment: httpx.Client, amount: dict[str, Any], card: dict[str, Any] = VISA) -> httpx.Response:
    body = {"idempotency_key": str(uuid.uuid4()), "amount": amount, "credit_card": card}
    return payment.post("/charges", json=body)


@pytest.mark.parametrize("units", [MAX_UNITS + 1, 200124877609468597922430976, -MAX_UNITS - 1])
def test_an_amount_past_int64_is_refused(payment: httpx.Client, units: int) -> None:
    refused(charge(payment, {"currency_code": "USD", "units": units}), 400, "amount.units")


def test_the_largest_amount_is_charged(payment: httpx.Client) -> None:
    response = charge(payment, {"currency_code": "USD", "units": MAX_UNITS, "nanos": 999_999_999})
    assert response.status_code == 201
    assert response.json()["amount"]["units"] == MAX_UNITS


@pytest.mark.parametrize(("field", "value"), [("expiration_month", True), ("expiration_year", "2039")])
def test_a_card_date_that_is_not_a_json_integer_is_refused(
    payment: httpx.Client, field: str, value: Any
) -> None:
    response = charge(payment, {"currency_code": "USD", "units": 5}, {**VISA, field: value})
    refused(response, 400, f"credit_card.{field}")


@pytest.mark.parametrize("path", ["/api/cart", "/api/checkout"])
def test_the_frontend_refuses_a_body_that_is_not_utf8(shopper: httpx.Client, path: str) -> None:
    shopper.post("/api/cart", json={"product_id": TELESCOPE, "quantity": 1}).raise_for_status()
    response = shopper.post(path, content=NOT_UTF8, headers={"Content-Type": "application/json"})
    refused(response, 400, "body")
    assert shopper.get("/api/cart").json()["items"] == [{"product_id": TELESCOPE, "quantity": 1}]


def test_the_frontend_refuses_a_checkout_with_a_boolean_month(shopper: httpx.Client) -> None:
    shopper.post("/api/cart", json={"product_id": TELESCOPE, "quantity": 1}).raise_for_status()
    body = {
        "email": "someone@example.com",
        "address": ADDRESS,
        "credit_card": {**VISA, "expiration_month": True},
    }
    refused(shopper.post("/api/checkout", json=body), 400, "credit_card.expiration_month")
    assert shopper.get("/api/cart").json()["items"] == [{"product_id": TELESCOPE, "quantity": 1}]

"""frontend over HTTP with the real product-catalog, recommendation, cart, checkout and payment behind
it: the JSON API with every rejection, the HTML pages a shopper sees, the session cookie, checkouts
retried under their idempotency key, and a shop that keeps selling while its cart is down."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.common.flag_contract import Flag
from sim.telemetry.client import TelemetryQuery
from tests.support.orders_topic import OrdersTopic
from tests.support.shop import FlagsFile, Shop
from tests.support.shopper import ADDRESS, VISA

EXPLORASCOPE = "OLJCESPC7Z"
EXPLORASCOPE_PRICE = "$101.96"
STARSENSE = "66VCHSJNUP"
ORDER_FORM = {
    "email": "someone@example.com",
    **{f"address.{name}": value for name, value in ADDRESS.items()},
    "credit_card.number": "4432 8015 6152 0454",
    "credit_card.cvv": "672",
    "credit_card.expiration_month": "1",
    "credit_card.expiration_year": "2039",
}


@pytest.fixture(scope="module")
def frontend_url(shop: Shop) -> str:
    shop.ensure("frontend")
    return shop.url("frontend")


@pytest.fixture
def shopper(frontend_url: str) -> Iterator[httpx.Client]:
    """A new visitor: no cookie yet, so a new session and an empty cart."""
    with httpx.Client(base_url=frontend_url, timeout=30) as client:
        yield client


def order_body(**overrides: Any) -> dict[str, Any]:
    return {"email": "someone@example.com", "address": ADDRESS, "credit_card": VISA, **overrides}


def error_fields(response: httpx.Response) -> list[str]:
    return [field["field"] for field in response.json().get("fields", [])]


def cart_items(shopper: httpx.Client) -> dict[str, int]:
    return {line["product_id"]: line["quantity"] for line in shopper.get("/api/cart").json()["items"]}


# The JSON API


def test_the_api_lists_the_catalog_and_searches_it(shopper: httpx.Client, shop: Shop) -> None:
    catalog = httpx.get(f"{shop.url('product-catalog')}/products", timeout=30).json()["products"]
    assert shopper.get("/api/products").json()["products"] == catalog

    found = shopper.get("/api/products", params={"q": "TELESCOPE"}).json()["products"]

    assert found
    assert len(found) < len(catalog)
    for product in found:
        text = " ".join([product["name"], product["description"], *product["categories"]]).lower()
        assert "telescope" in text


@pytest.mark.parametrize("query", ["", "   ", "x" * 101], ids=["empty", "blank", "too-long"])
def test_a_search_that_is_empty_or_too_long_is_a_400_naming_q(shopper: httpx.Client, query: str) -> None:
    response = shopper.get("/api/products", params={"q": query})
    assert response.status_code == 400
    assert error_fields(response) == ["q"]


def test_the_api_serves_one_product_with_its_price(shopper: httpx.Client) -> None:
    product = shopper.get(f"/api/products/{EXPLORASCOPE}").json()
    assert product["name"] == "National Park Foundation Explorascope"
    assert product["price"] == {"currency_code": "USD", "units": 101, "nanos": 960_000_000}


@pytest.mark.parametrize("product_id", ["NOSUCHITEM", "a%3Fb%2F..%2Fx"], ids=["unknown", "crafted"])
def test_an_unknown_product_is_a_json_404(shopper: httpx.Client, product_id: str) -> None:
    response = shopper.get(f"/api/products/{product_id}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["status"] == 404


def test_recommendations_are_five_other_products(shopper: httpx.Client) -> None:
    response = shopper.get("/api/recommendations", params={"product_ids": f"{EXPLORASCOPE},{STARSENSE}"})
    ids = [product["id"] for product in response.json()["products"]]
    assert len(ids) == 5
    assert not {EXPLORASCOPE, STARSENSE} & set(ids)


def test_malformed_recommendation_ids_are_a_400_naming_product_ids(shopper: httpx.Client) -> None:
    response = shopper.get("/api/recommendations", params={"product_ids": "<script>"})
    assert response.status_code == 400
    assert error_fields(response) == ["product_ids"]


def test_a_new_visitor_gets_a_session_cookie_and_an_empty_cart(shopper: httpx.Client) -> None:
    response = shopper.get("/api/cart")
    cookie = response.headers["set-cookie"]
    session = shopper.cookies["session_id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", session)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert response.json() == {"user_id": session, "items": []}
    assert "set-cookie" not in shopper.get("/api/cart").headers


def test_a_cookie_that_is_not_a_session_id_is_replaced(frontend_url: str) -> None:
    response = httpx.get(f"{frontend_url}/api/cart", cookies={"session_id": "../../etc/passwd"}, timeout=30)
    assert response.status_code == 200
    assert response.json()["user_id"] != "../../etc/passwd"
    assert response.cookies["session_id"] == response.json()["user_id"]


def test_adding_to_the_cart_adds_to_the_line_and_emptying_empties_it(shopper: httpx.Client) -> None:
    first = shopper.post("/api/cart", json={"product_id": EXPLORASCOPE, "quantity": 2})
    assert first.status_code == 200
    shopper.post("/api/cart", json={"product_id": EXPLORASCOPE, "quantity": 3})
    shopper.post("/api/cart", json={"product_id": STARSENSE, "quantity": 1})
    assert cart_items(shopper) == {EXPLORASCOPE: 5, STARSENSE: 1}

    emptied = shopper.delete("/api/cart")

    assert emptied.status_code == 204
    assert cart_items(shopper) == {}


def test_each_session_has_its_own_cart(shopper: httpx.Client, frontend_url: str) -> None:
    shopper.post("/api/cart", json={"product_id": EXPLORASCOPE, "quantity": 1})
    with httpx.Client(base_url=frontend_url, timeout=30) as other:
        assert cart_items(other) == {}
    assert cart_items(shopper) == {EXPLORASCOPE: 1}


def test_adding_an_unknown_product_is_a_404_and_leaves_the_cart_alone(shopper: httpx.Client) -> None:
    response = shopper.post("/api/cart", json={"product_id": "NOSUCHITEM", "quantity": 1})
    assert response.status_code == 404
    assert "NOSUCHITEM" in response.json()["error"]
    assert cart_items(shopper) == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"product_id": EXPLORASCOPE, "quantity": 0}, "quantity"),
        ({"product_id": EXPLORASCOPE, "quantity": 101}, "quantity"),
        ({"product_id": EXPLORASCOPE, "quantity": "many"}, "quantity"),
        ({"product_id": EXPLORASCOPE}, "quantity"),
        ({"quantity": 1}, "product_id"),
        ({"product_id": "not/an id", "quantity": 1}, "product_id"),
    ],
    ids=["zero", "over-100", "not-a-number", "no-quantity", "no-product", "bad-product-id"],
)
def test_a_bad_add_to_cart_is_a_400_naming_the_field(
    shopper: httpx.Client, body: dict[str, Any], field: str
) -> None:
    response = shopper.post("/api/cart", json=body)
    assert response.status_code == 400
    assert error_fields(response) == [field]


def test_checkout_places_the_order_for_the_sessions_cart_and_empties_it(shopper: httpx.Client) -> None:
    shopper.post("/api/cart", json={"product_id": EXPLORASCOPE, "quantity": 2})

    response = shopper.post("/api/checkout", json=order_body())

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["order_id"]
    assert order["transaction_id"]
    assert [(item["product_id"], item["quantity"]) for item in order["items"]] == [(EXPLORASCOPE, 2)]
    assert order["shipping_address"] == ADDRESS
    assert cart_items(shopper) == {}


def test_checkout_with_an_empty_cart_is_a_400(shopper: httpx.Client) -> None:
    response = shopper.post("/api/checkout", json=order_body())
    assert response.status_code == 400
    assert error_fields(response) == ["user_id"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"address": {**ADDRESS, "zip_code": ""}}, "address.zip_code"),
        ({"address": {**ADDRESS, "country": ""}}, "address.country"),
        ({"credit_card": {**VISA, "number": "4432-8015"}}, "credit_card.number"),
        ({"credit_card": {**VISA, "cvv": "1"}}, "credit_card.cvv"),
        ({"credit_card": {**VISA, "expiration_month": 13}}, "credit_card.expiration_month"),
        ({"address": None}, "address"),
    ],
    ids=["email", "zip", "country", "card-number", "cvv", "month", "no-address"],
)
def test_a_malformed_checkout_is_a_400_naming_the_field_and_keeps_the_cart(
    shopper: httpx.Client, overrides: dict[str, Any], field: str
) -> None:
    shopper.post("/api/cart", json={"product_id": EXPLORASCOPE, "quantity": 1})
    response = shopper.post("/api/checkout", json=order_body(**overrides))
    assert response.status_code == 400
    assert field in error_fields(response)
    assert cart_items(shopper) == {EXPLORASCOPE: 1}


@pytest.mark.parametrize(
    ("card", "field"),
    [
        ({**VISA, "number": "4432801561520455"}, "credit_card.number"),
        ({**VISA, "expiration_year": 2020}, "credit_card.expiration_year"),
    ],
    ids=["luhn", "expired"],
)
def test_a_card_payment_refuses_is_a_400_naming_the_card_field_and_keeps_the_cart(
    shopper: httpx.Client, card: dict[str, Any], field: str
) -> None:
    shopper.post("/api/cart", json={"product_id": EXPLORASCOPE, "quantity": 1})
    response = shopper.post("/api/checkout", json=order_body(credit_card=card))
    assert response.status_code == 400
    assert error_fields(response) == [field]
    assert cart_items(shopper) == {EXPLORASCOPE: 1}


def test_an_unknown_api_path_is_a_json_404(shopper: httpx.Client) -> None:
    response = shopper.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_the_openapi_document_describes_the_storefront_api(shopper: httpx.Client) -> None:
    paths = shopper.get("/openapi.json").json()["paths"]
    assert {"/api/products", "/api/cart", "/api/checkout"} <= set(paths)


@pytest.fixture(scope="module")
def orders(kafka_bootstrap: str) -> OrdersTopic:
    return OrdersTopic(kafka_bootstrap)


def test_a_checkout_retried_with_its_idempotency_key_places_one_order(
    shopper: httpx.Client, orders: OrdersTopic
) -> None:
    shopper.post("/api/cart", json={"product_id": EXPLORASCOPE, "quantity": 1})
    mark, key = orders.mark(), {"Idempotency-Key": str(uuid.uuid4())}

    first = shopper.post("/api/checkout", json=order_body(), headers=key)
    retry = shopper.post("/api/checkout", json=order_body(), headers=key)

    assert (first.status_code, retry.status_code) == (201, 201), retry.text
    assert retry.json() == first.json()
    [(_, published)] = orders.orders_of(shopper.cookies["session_id"], mark)
    assert published.order_id == first.json()["order_id"]
    assert cart_items(shopper) == {}


def test_an_idempotency_key_used_again_for_another_checkout_is_a_422_naming_it(shopper: httpx.Client) -> None:
    shopper.post("/api/cart", json={"product_id": EXPLORASCOPE, "quantity": 1})
    key = {"Idempotency-Key": str(uuid.uuid4())}
    assert shopper.post("/api/checkout", json=order_body(), headers=key).status_code == 201
    shopper.post("/api/cart", json={"product_id": STARSENSE, "quantity": 1})

    reused = shopper.post("/api/checkout", json=order_body(email="other@example.com"), headers=key)

    assert reused.status_code == 422
    assert error_fields(reused) == ["idempotency_key"]
    assert cart_items(shopper) == {STARSENSE: 1}


def test_a_malformed_idempotency_key_is_a_400_naming_it(shopper: httpx.Client) -> None:
    response = shopper.post("/api/checkout", json=order_body(), headers={"Idempotency-Key": "not a key!"})
    assert response.status_code == 400
    assert "idempotency_key" in error_fields(response)


# The HTML pages


def test_the_home_page_shows_every_product_with_its_price_and_a_search_box(shopper: httpx.Client) -> None:
    page = shopper.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "session_id" in page.cookies
    catalog = shopper.get("/api/products").json()["products"]
    assert page.text.count('class="product-card"') == len(catalog)
    assert f'href="/product/{EXPLORASCOPE}"' in page.text
    assert EXPLORASCOPE_PRICE in page.text
    assert '<form class="search" action="/" method="get"' in page.text
    assert '/static/products/OLJCESPC7Z.svg"' in page.text


def test_a_search_on_the_home_page_shows_only_the_matches(shopper: httpx.Client) -> None:
    expected = shopper.get("/api/products", params={"q": "binoculars"}).json()["products"]
    page = shopper.get("/", params={"q": "binoculars"})
    assert page.text.count('class="product-card"') == len(expected)
    assert "for “binoculars”" in page.text
    assert shopper.get("/", params={"q": "no such thing anywhere"}).text.count('class="product-card"') == 0


def test_a_search_too_long_is_a_400_page(shopper: httpx.Client) -> None:
    page = shopper.get("/", params={"q": "x" * 101})
    assert page.status_code == 400
    assert "at most 100 characters" in page.text


def test_the_product_page_shows_the_product_an_add_to_cart_form_and_five_recommendations(
    shopper: httpx.Client,
) -> None:
    page = shopper.get(f"/product/{EXPLORASCOPE}")
    assert page.status_code == 200
    assert "<h1>National Park Foundation Explorascope</h1>" in page.text
    assert EXPLORASCOPE_PRICE in page.text
    assert "craters of the Moon" in page.text
    assert '<form class="add-to-cart" action="/cart" method="post">' in page.text
    assert f'name="product_id" value="{EXPLORASCOPE}"' in page.text
    assert 'name="quantity"' in page.text
    recommended = page.text.split("You may also like", 1)[1]
    assert recommended.count('class="product-card"') == 5
    assert f"/product/{EXPLORASCOPE}" not in recommended


def test_an_unknown_product_page_is_a_friendly_404(shopper: httpx.Client) -> None:
    page = shopper.get("/product/NOSUCHITEM")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "We could not find that" in page.text
    assert 'href="/"' in page.text


def test_an_unknown_page_is_a_friendly_404(shopper: httpx.Client) -> None:
    page = shopper.get("/no/such/page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "There is no such page" in page.text


def test_the_add_to_cart_form_redirects_to_the_cart_page_with_the_line_and_subtotal(
    shopper: httpx.Client,
) -> None:
    added = shopper.post("/cart", data={"product_id": EXPLORASCOPE, "quantity": "3"})
    assert added.status_code == 303
    assert added.headers["location"] == "/cart"

    page = shopper.get("/cart")

    assert page.status_code == 200
    assert "National Park Foundation Explorascope" in page.text
    assert '<td class="quantity">3</td>' in page.text
    assert '<td class="subtotal">$305.88</td>' in page.text


def test_the_cart_page_prefills_the_checkout_form_with_the_demo_values(shopper: httpx.Client) -> None:
    shopper.post("/cart", data={"product_id": EXPLORASCOPE, "quantity": "1"})
    page = shopper.get("/cart").text
    for name, value in {
        "email": "someone@example.com",
        "address.street_address": "1600 Amphitheatre Parkway",
        "address.zip_code": "94043",
        "address.city": "Mountain View",
        "address.state": "CA",
        "address.country": "United States",
        "credit_card.number": "4432-8015-6152-0454",
        "credit_card.cvv": "672",
    }.items():
        assert f'name="{name}" type' in page
        assert f'value="{value}"' in page
    assert '<option value="2030" selected>' in page
    assert '<form class="checkout-form" action="/checkout" method="post">' in page


def test_an_empty_cart_page_says_so(shopper: httpx.Client) -> None:
    page = shopper.get("/cart")
    assert page.status_code == 200
    assert "Your shopping cart is empty" in page.text
    assert "checkout-form" not in page.text


def test_the_empty_cart_button_empties_the_cart(shopper: httpx.Client) -> None:
    shopper.post("/cart", data={"product_id": EXPLORASCOPE, "quantity": "1"})
    emptied = shopper.post("/cart/empty")
    assert emptied.status_code == 303
    assert "Your shopping cart is empty" in shopper.get("/cart").text


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"product_id": "NOSUCHITEM", "quantity": "1"}, 404),
        ({"product_id": EXPLORASCOPE, "quantity": "0"}, 400),
    ],
    ids=["unknown-product", "zero-quantity"],
)
def test_a_bad_add_to_cart_form_is_an_error_page(
    shopper: httpx.Client, form: dict[str, str], status: int
) -> None:
    page = shopper.post("/cart", data=form)
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert cart_items(shopper) == {}


def test_the_checkout_form_places_the_order_and_shows_the_confirmation(shopper: httpx.Client) -> None:
    shopper.post("/cart", data={"product_id": EXPLORASCOPE, "quantity": "2"})

    page = shopper.post("/checkout", data=ORDER_FORM)

    assert page.status_code == 200, page.text
    order_id = re.search(r'<dd class="order-id">([^<]+)</dd>', page.text)
    assert order_id is not None
    assert "Your order is complete!" in page.text
    assert "National Park Foundation Explorascope" in page.text
    assert '<td class="quantity">2</td>' in page.text
    assert re.search(r'<td class="shipping">\$\d+\.\d\d</td>', page.text)
    assert re.search(r'<td class="total">\$[\d,]+\.\d\d</td>', page.text)
    assert "1600 Amphitheatre Parkway" in page.text
    assert cart_items(shopper) == {}


def test_the_same_checkout_form_sent_twice_places_one_order(
    shopper: httpx.Client, orders: OrdersTopic
) -> None:
    shopper.post("/cart", data={"product_id": EXPLORASCOPE, "quantity": "1"})
    form = re.search(r'name="idempotency_key" value="([^"]+)"', shopper.get("/cart").text)
    assert form is not None
    mark = orders.mark()

    pages = [shopper.post("/checkout", data={**ORDER_FORM, "idempotency_key": form[1]}) for _ in range(2)]

    order_ids = [re.search(r'<dd class="order-id">([^<]+)</dd>', page.text) for page in pages]
    assert all(order_ids), [page.status_code for page in pages]
    assert order_ids[0][1] == order_ids[1][1]  # type: ignore[index]
    [(_, published)] = orders.orders_of(shopper.cookies["session_id"], mark)
    assert published.order_id == order_ids[0][1]  # type: ignore[index]


def test_a_checkout_form_with_a_bad_field_shows_the_cart_again_with_the_error_beside_it(
    shopper: httpx.Client,
) -> None:
    shopper.post("/cart", data={"product_id": EXPLORASCOPE, "quantity": "1"})

    page = shopper.post("/checkout", data={**ORDER_FORM, "email": "nobody", "address.city": "Springfield"})

    assert page.status_code == 400
    assert re.search(r'<div class="field invalid">\s*<label for="email">', page.text)
    assert 'value="Springfield"' in page.text
    assert cart_items(shopper) == {EXPLORASCOPE: 1}


def test_a_card_payment_refuses_shows_the_cart_again_with_the_card_error(shopper: httpx.Client) -> None:
    shopper.post("/cart", data={"product_id": EXPLORASCOPE, "quantity": "1"})

    page = shopper.post("/checkout", data={**ORDER_FORM, "credit_card.number": "4432801561520455"})

    assert page.status_code == 400
    assert "Luhn" in page.text
    assert re.search(r'<div class="field invalid">\s*<label for="credit_card.number">', page.text)
    assert cart_items(shopper) == {EXPLORASCOPE: 1}


def test_checking_out_an_empty_cart_from_the_form_says_the_cart_is_empty(shopper: httpx.Client) -> None:
    page = shopper.post("/checkout", data=ORDER_FORM)
    assert page.status_code == 400
    assert "Your cart is empty" in page.text


def test_the_stylesheet_and_product_pictures_are_served_from_static(shopper: httpx.Client) -> None:
    css = shopper.get("/static/style.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    picture = shopper.get(f"/static/products/{EXPLORASCOPE}.svg")
    assert picture.status_code == 200
    assert picture.headers["content-type"].startswith("image/svg+xml")


def test_a_failing_catalog_shows_a_503_page_and_a_json_503(
    shopper: httpx.Client, clean_flags: FlagsFile
) -> None:
    clean_flags.set(Flag.PRODUCT_CATALOG_FAILURE, True)

    page = shopper.get(f"/product/{EXPLORASCOPE}")
    api = shopper.get(f"/api/products/{EXPLORASCOPE}")

    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "not available right now" in page.text
    assert api.status_code == 503
    assert "productCatalogFailure" in api.json()["error"]
    assert shopper.get(f"/product/{STARSENSE}").status_code == 200


# A shop whose cart is down or unready


def readiness(url: str) -> int:
    return httpx.get(f"{url}/readyz", timeout=10).status_code


def test_with_the_cart_stopped_the_shop_stays_ready_and_only_cart_actions_fail_naming_the_cart(
    shop: Shop, shopper: httpx.Client
) -> None:
    shop.ensure("frontend-proxy")
    proxy = shop.url("frontend-proxy")
    shop.stop("cart")
    try:
        assert [readiness(shop.url(name)) for name in ("checkout", "frontend", "frontend-proxy")] == [200] * 3
        assert shopper.get("/").status_code == 200
        product = shopper.get(f"/product/{EXPLORASCOPE}")
        assert product.status_code == 200
        assert product.text.split("You may also like", 1)[1].count('class="product-card"') == 5
        assert shopper.get("/api/recommendations").status_code == 200
        assert httpx.get(f"{proxy}/", timeout=30).status_code == 200

        added = shopper.post("/api/cart", json={"product_id": EXPLORASCOPE, "quantity": 1})
        assert added.status_code == 503
        assert added.json()["error"].startswith("cart unavailable")
        through_proxy = httpx.post(f"{proxy}/api/cart", json={"product_id": EXPLORASCOPE, "quantity": 1})
        assert through_proxy.status_code == 503
        assert through_proxy.json()["error"].startswith("cart unavailable")
        checkout = shopper.post("/api/checkout", json=order_body())
        assert checkout.status_code == 503
        assert "cart unavailable" in checkout.json()["error"]
        cart_page = shopper.get("/cart")
        assert cart_page.status_code == 503
        assert "The cart service is not answering." in cart_page.text
    finally:
        shop.ensure("cart")


def test_with_the_cart_unready_checkout_frontend_and_proxy_stay_ready(
    shop: Shop, clean_flags: FlagsFile
) -> None:
    shop.ensure("frontend-proxy")
    clean_flags.set(Flag.FAILED_READINESS_PROBE, True)
    assert readiness(shop.url("cart")) == 503
    assert [readiness(shop.url(name)) for name in ("checkout", "frontend", "frontend-proxy")] == [200] * 3
    for name in ("frontend", "frontend-proxy"):
        assert httpx.get(f"{shop.url(name)}/readyz", timeout=10).json()["checks"] == {}


def test_the_session_id_is_on_the_frontends_spans(frontend_url: str, telemetry: TelemetryQuery) -> None:
    trace_id = secrets.token_hex(16)
    with httpx.Client(base_url=frontend_url, timeout=30) as shopper:
        session = shopper.get("/api/cart").json()["user_id"]
        shopper.get("/cart", headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})

    [server] = telemetry.wait_for_spans(trace_id=trace_id, service="frontend", kind="SERVER")
    assert server.name == "GET /cart"
    assert server.attributes["app.session.id"] == session

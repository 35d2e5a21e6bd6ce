"""checkout over HTTP with real cart, product-catalog and payment processes, the real `orders` topic and
its checkouts table in the real AWS emulator: the order flow, every rejection, what each failure flag does
to an order, retries under an `Idempotency-Key`, readiness that does not follow the peers', and DynamoDB
throttling or unreachable under the checkouts table (retried unseen when short, a 503 that charges nothing
when long)."""

from __future__ import annotations

import re
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.checkout.shipping import shipping_cost
from services.common.aws import MAX_ATTEMPTS
from services.common.flag_contract import Flag
from services.common.money import Money
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from sim.telemetry.client import TelemetryQuery
from tests.services.own_process import OwnProcess, own_process
from tests.support.dynamodb_faults import DynamoDBFaults, dynamodb_faults
from tests.support.kafka import start_tansu
from tests.support.orders_topic import OrdersTopic
from tests.support.shop import CHECKOUTS_TABLE, HOST, FlagsFile, Shop
from tests.support.shopper import ADDRESS, VISA, new_traceparent
from tests.support.waiting import eventually

EXPLORASCOPE = "OLJCESPC7Z"
STARSENSE = "66VCHSJNUP"
COMET_BOOK = "HQTGWGPNH4"
DAY_SECONDS = 24 * 3600


@pytest.fixture(scope="module")
def checkout(shop: Shop) -> httpx.Client:
    shop.ensure("checkout")
    return httpx.Client(base_url=shop.url("checkout"), timeout=30)


@pytest.fixture(scope="module")
def cart(shop: Shop, checkout: httpx.Client) -> httpx.Client:
    return httpx.Client(base_url=shop.url("cart"), timeout=10)


@pytest.fixture(scope="module")
def payment(shop: Shop, checkout: httpx.Client) -> httpx.Client:
    return httpx.Client(base_url=shop.url("payment"), timeout=10)


@pytest.fixture(scope="module")
def catalog(shop: Shop, checkout: httpx.Client) -> httpx.Client:
    return httpx.Client(base_url=shop.url("product-catalog"), timeout=10)


@pytest.fixture(scope="module")
def orders(kafka_bootstrap: str) -> OrdersTopic:
    return OrdersTopic(kafka_bootstrap)


@pytest.fixture
def user() -> str:
    return f"shopper-{uuid.uuid4().hex[:12]}"


def fill(cart: httpx.Client, user: str, *lines: tuple[str, int]) -> dict[str, int]:
    for product_id, quantity in lines:
        response = cart.post(f"/carts/{user}/items", json={"product_id": product_id, "quantity": quantity})
        assert response.status_code == 200
    return cart_lines(cart, user)


def cart_lines(cart: httpx.Client, user: str) -> dict[str, int]:
    return {line["product_id"]: line["quantity"] for line in cart.get(f"/carts/{user}").json()["items"]}


def order_body(user: str, **overrides: Any) -> dict[str, Any]:
    return {
        "user_id": user,
        "email": "someone@example.com",
        "address": ADDRESS,
        "credit_card": VISA,
        **overrides,
    }


def price(catalog: httpx.Client, product_id: str) -> Money:
    return Money.model_validate(catalog.get(f"/products/{product_id}").json()["price"])


def test_a_checkout_charges_the_priced_cart_publishes_the_order_and_empties_the_cart(
    checkout: httpx.Client,
    cart: httpx.Client,
    payment: httpx.Client,
    catalog: httpx.Client,
    orders: OrdersTopic,
    user: str,
) -> None:
    fill(cart, user, (EXPLORASCOPE, 1), (COMET_BOOK, 2))
    mark = orders.mark()

    response = checkout.post("/checkout", json=order_body(user))

    assert response.status_code == 201
    order = response.json()
    explorascope, comet_book = price(catalog, EXPLORASCOPE), price(catalog, COMET_BOOK)
    subtotal = explorascope + comet_book.times(2)
    shipping = shipping_cost(subtotal, 3)
    assert shipping.is_positive()
    assert sorted(order["items"], key=lambda item: item["product_id"]) == [
        {"product_id": COMET_BOOK, "quantity": 2, "unit_price": comet_book.model_dump()},
        {"product_id": EXPLORASCOPE, "quantity": 1, "unit_price": explorascope.model_dump()},
    ]
    assert order["shipping_cost"] == shipping.model_dump()
    assert order["total"] == (subtotal + shipping).model_dump()
    assert order["shipping_address"] == ADDRESS

    charge = payment.get(f"/charges/{order['transaction_id']}").json()
    assert (charge["status"], charge["amount"]) == ("captured", order["total"])
    assert cart_lines(cart, user) == {}

    [(record, published)] = orders.orders_of(user, mark)
    assert record.key == order["order_id"].encode()
    headers = dict(record.headers)
    assert headers["schema"] == b"shopstack.OrderPlaced/v1"
    assert "traceparent" in headers
    assert published.order_id == order["order_id"]
    assert published.transaction_id == order["transaction_id"]
    assert published.email == "someone@example.com"
    assert published.total == subtotal + shipping


def test_a_placed_order_is_described_on_its_span_and_counted(
    checkout: httpx.Client, cart: httpx.Client, telemetry: TelemetryQuery, user: str
) -> None:
    fill(cart, user, (EXPLORASCOPE, 1), (COMET_BOOK, 2))
    order = checkout.post("/checkout", json=order_body(user)).json()

    [span] = telemetry.wait_for_spans(
        service="checkout", kind="SERVER", attributes={"app.order.id": order["order_id"]}, timeout=30
    )
    total, shipping = Money.model_validate(order["total"]), Money.model_validate(order["shipping_cost"])
    assert span.name == "POST /checkout"
    assert span.attributes["app.order.amount"] == pytest.approx(float(total.to_decimal()))
    assert span.attributes["app.shipping.amount"] == pytest.approx(float(shipping.to_decimal()))
    assert span.attributes["app.order.items.count"] == 2
    assert span.attributes["app.cart.emptied"] is True
    placed = telemetry.wait_for_metric(
        "checkout",
        "app.checkout.orders",
        lambda metric: any(point.attributes.get("result") == "placed" for point in metric.points),
        timeout=30,
    )
    assert placed.monotonic is True


def test_an_order_of_150_dollars_or_more_ships_free(
    checkout: httpx.Client, cart: httpx.Client, user: str
) -> None:
    fill(cart, user, (STARSENSE, 1))
    order = checkout.post("/checkout", json=order_body(user)).json()
    assert Money.model_validate(order["shipping_cost"]).to_decimal() == Decimal(0)


def test_an_empty_cart_is_a_400_naming_user_id(
    checkout: httpx.Client, orders: OrdersTopic, user: str
) -> None:
    mark = orders.mark()
    response = checkout.post("/checkout", json=order_body(user))
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["fields"]] == ["user_id"]
    assert orders.orders_of(user, mark) == []


def test_a_cart_holding_a_product_not_in_the_catalog_is_a_400_naming_user_id(
    checkout: httpx.Client, cart: httpx.Client, user: str
) -> None:
    fill(cart, user, (EXPLORASCOPE, 1), ("NOSUCHPROD", 1))
    response = checkout.post("/checkout", json=order_body(user))
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["fields"]] == ["user_id"]
    assert "NOSUCHPROD" in response.json()["error"]
    assert cart_lines(cart, user) == {EXPLORASCOPE: 1, "NOSUCHPROD": 1}


@pytest.mark.parametrize(
    ("card", "field"),
    [
        ({**VISA, "number": "4432801561520455"}, "credit_card.number"),  # fails Luhn
        ({**VISA, "number": "378282246310005"}, "credit_card.number"),  # amex is refused
        ({**VISA, "expiration_year": 2020}, "credit_card.expiration_year"),
    ],
    ids=["luhn", "amex", "expired"],
)
def test_a_card_refused_by_payment_is_a_400_with_its_field_and_keeps_the_cart(
    checkout: httpx.Client,
    cart: httpx.Client,
    orders: OrdersTopic,
    user: str,
    card: dict[str, Any],
    field: str,
) -> None:
    lines = fill(cart, user, (EXPLORASCOPE, 1))
    mark = orders.mark()
    response = checkout.post("/checkout", json=order_body(user, credit_card=card))
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["fields"]] == [field]
    assert cart_lines(cart, user) == lines
    assert orders.orders_of(user, mark) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"user_id": "has spaces"}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"email": "not-an-address"}, "email"),
        ({"address": {**ADDRESS, "city": ""}}, "address.city"),
        ({"address": {k: v for k, v in ADDRESS.items() if k != "zip_code"}}, "address.zip_code"),
        ({"credit_card": {**VISA, "cvv": "1"}}, "credit_card.cvv"),
        ({"credit_card": {**VISA, "expiration_month": 13}}, "credit_card.expiration_month"),
        ({"credit_card": {**VISA, "number": "4432-8015"}}, "credit_card.number"),
    ],
    ids=["user-spaces", "user-empty", "email", "city", "zip", "cvv", "month", "number"],
)
def test_a_malformed_checkout_is_a_400_naming_the_field(
    checkout: httpx.Client, user: str, overrides: dict[str, Any], field: str
) -> None:
    response = checkout.post("/checkout", json=order_body(user, **overrides))
    assert response.status_code == 400
    assert field in [f["field"] for f in response.json()["fields"]]


def test_a_checkout_missing_the_card_is_a_400_naming_credit_card(checkout: httpx.Client, user: str) -> None:
    body = order_body(user)
    del body["credit_card"]
    response = checkout.post("/checkout", json=body)
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["fields"]] == ["credit_card"]


def test_a_checkout_that_is_not_json_is_a_400(checkout: httpx.Client) -> None:
    response = checkout.post("/checkout", content=b"buy it all", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_payment_failure_places_no_order_and_keeps_the_cart(
    checkout: httpx.Client, cart: httpx.Client, orders: OrdersTopic, user: str, clean_flags: FlagsFile
) -> None:
    lines = fill(cart, user, (EXPLORASCOPE, 2))
    mark = orders.mark()
    clean_flags.set(Flag.PAYMENT_FAILURE, 1)
    response = checkout.post("/checkout", json=order_body(user))
    assert response.status_code == 503
    assert "paymentFailure" in response.json()["error"]
    assert cart_lines(cart, user) == lines
    assert orders.orders_of(user, mark) == []


def test_payment_unreachable_is_a_503_that_places_no_order(
    checkout: httpx.Client, cart: httpx.Client, orders: OrdersTopic, user: str, clean_flags: FlagsFile
) -> None:
    lines = fill(cart, user, (EXPLORASCOPE, 1))
    mark = orders.mark()
    clean_flags.set(Flag.PAYMENT_UNREACHABLE, True)
    response = checkout.post("/checkout", json=order_body(user))
    assert response.status_code == 503
    assert "payment unavailable" in response.json()["error"]
    assert cart_lines(cart, user) == lines
    assert orders.orders_of(user, mark) == []
    clean_flags.clear()
    assert checkout.post("/checkout", json=order_body(user)).status_code == 201


def test_cart_failure_still_places_the_paid_order_but_keeps_the_cart_full(
    checkout: httpx.Client,
    cart: httpx.Client,
    orders: OrdersTopic,
    telemetry: TelemetryQuery,
    user: str,
    clean_flags: FlagsFile,
) -> None:
    lines = fill(cart, user, (COMET_BOOK, 3))
    mark = orders.mark()
    clean_flags.set(Flag.CART_FAILURE, True)
    response = checkout.post("/checkout", json=order_body(user))
    assert response.status_code == 201
    [(_, published)] = orders.orders_of(user, mark)
    assert published.order_id == response.json()["order_id"]
    assert cart_lines(cart, user) == lines
    [span] = telemetry.wait_for_spans(
        service="checkout", kind="SERVER", attributes={"app.order.id": published.order_id}, timeout=30
    )
    assert span.attributes["app.cart.emptied"] is False
    [event] = [event for event in span.events if event.name == "exception"]
    assert "cartFailure" in str(event.attributes["exception.message"])


def test_kafka_queue_problems_publishes_the_same_order_n_extra_times(
    checkout: httpx.Client, cart: httpx.Client, orders: OrdersTopic, user: str, clean_flags: FlagsFile
) -> None:
    fill(cart, user, (EXPLORASCOPE, 1))
    mark = orders.mark()
    clean_flags.set(Flag.KAFKA_QUEUE_PROBLEMS, 3)
    response = checkout.post("/checkout", json=order_body(user))
    assert response.status_code == 201
    copies = orders.orders_of(user, mark)
    assert len(copies) == 4
    assert {record.key for record, _ in copies} == {response.json()["order_id"].encode()}
    assert len({published.model_dump_json() for _, published in copies}) == 1


@pytest.fixture
def checkout_with_its_own_broker(shop: Shop, checkout: httpx.Client, workdir: Path) -> Iterator[httpx.Client]:
    """A second checkout, ready, whose Kafka broker is then stopped: every publish of it fails."""
    broker_port, port = free_port(HOST), free_port(HOST)
    logs = workdir / "logs" / "lone-broker"
    broker = start_tansu(logs, broker_port, HOST)
    env = {
        **shop.env,
        "PORT": str(port),
        "OTEL_SERVICE_NAME": "checkout",
        "KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:{broker_port}",
    }
    process = ManagedProcess(
        "checkout", [sys.executable, "-m", "services.checkout"], logs / "checkout.log", env
    )
    url = f"http://{HOST}:{port}"
    try:
        process.start().wait_ready(lambda: http_ok(f"{url}/readyz"), timeout=60)
        broker.stop()
        with httpx.Client(base_url=url, timeout=60) as client:
            yield client
    finally:
        process.stop()
        broker.stop()


def test_an_order_that_cannot_be_published_is_not_placed_and_its_charge_is_voided(
    checkout_with_its_own_broker: httpx.Client, cart: httpx.Client, payment: httpx.Client, user: str
) -> None:
    lines = fill(cart, user, (EXPLORASCOPE, 1))
    response = checkout_with_its_own_broker.post("/checkout", json=order_body(user))
    assert response.status_code == 503
    voided = re.search(r"charge (\S+) was voided", response.json()["error"])
    assert voided is not None, response.json()
    assert payment.get(f"/charges/{voided[1]}").json()["status"] == "voided"
    assert cart_lines(cart, user) == lines


def test_checkout_stays_ready_while_the_cart_is_down_and_names_it_in_the_checkouts_that_fail(
    shop: Shop, checkout: httpx.Client, user: str
) -> None:
    assert checkout.get("/readyz").json()["checks"] == {"dynamodb": "ok", "kafka": "ok"}
    shop.stop("cart")
    try:
        assert checkout.get("/readyz").status_code == 200
        response = checkout.post("/checkout", json=order_body(user))
        assert response.status_code == 503
        assert response.json()["error"].startswith("cart unavailable")
    finally:
        shop.ensure("cart")


# Retries under an Idempotency-Key


def keyed(checkout: httpx.Client, body: dict[str, Any], key: str) -> tuple[httpx.Response, str]:
    """checkout's answer to `body` sent with `key`, in a new trace, and the trace's id."""
    traceparent, trace_id = new_traceparent()
    response = checkout.post(
        "/checkout", json=body, headers={"Idempotency-Key": key, "traceparent": traceparent}
    )
    return response, trace_id


def charges_of(telemetry: TelemetryQuery, transaction_id: str) -> int:
    """How many charge requests payment served for `transaction_id`, once the first has arrived."""
    attributes = {"app.payment.transaction.id": transaction_id}
    return len(telemetry.wait_for_spans(service="payment", kind="SERVER", attributes=attributes, timeout=30))


def assert_replayed_without_payment(telemetry: TelemetryQuery, trace_id: str) -> None:
    [server] = telemetry.wait_for_spans(trace_id=trace_id, service="checkout", kind="SERVER", timeout=30)
    assert server.attributes["app.checkout.replayed"] is True
    assert not [s for s in telemetry.trace(trace_id) if s.service == "payment"], "the retry reached payment"


def test_a_checkout_sent_again_with_its_key_places_one_order_charges_once_and_answers_the_same(
    checkout: httpx.Client,
    cart: httpx.Client,
    orders: OrdersTopic,
    telemetry: TelemetryQuery,
    dynamodb: Any,
    user: str,
) -> None:
    fill(cart, user, (EXPLORASCOPE, 1))
    mark, key = orders.mark(), str(uuid.uuid4())

    first, _ = keyed(checkout, order_body(user), key)
    retry, retry_trace = keyed(checkout, order_body(user), key)

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    order = first.json()
    [(_, published)] = orders.orders_of(user, mark)
    assert published.order_id == order["order_id"]
    assert charges_of(telemetry, order["transaction_id"]) == 1
    assert_replayed_without_payment(telemetry, retry_trace)
    item = dynamodb.Table(CHECKOUTS_TABLE).get_item(Key={"checkout_key": f"{user}/{key}"})["Item"]
    assert item["state"] == "done"
    assert time.time() + DAY_SECONDS - 120 < item["expires_at"] <= time.time() + DAY_SECONDS


@contextmanager
def paused(shop: Shop, name: str) -> Iterator[None]:
    """`name`'s process stopped (SIGSTOP): it takes connections but answers nothing until resumed."""
    process = shop.services[name].process
    process.signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.signal(signal.SIGCONT)


def test_a_retry_that_arrives_while_the_first_attempt_runs_waits_for_it_and_gets_the_same_order(
    shop: Shop,
    checkout: httpx.Client,
    cart: httpx.Client,
    orders: OrdersTopic,
    telemetry: TelemetryQuery,
    dynamodb: Any,
    user: str,
) -> None:
    fill(cart, user, (COMET_BOOK, 1))
    mark, key = orders.mark(), str(uuid.uuid4())
    checkouts = dynamodb.Table(CHECKOUTS_TABLE)

    def running() -> bool:
        item = checkouts.get_item(Key={"checkout_key": f"{user}/{key}"}, ConsistentRead=True).get("Item")
        return item is not None and item["state"] == "running"

    with ThreadPoolExecutor(2) as pool:
        with paused(shop, "payment"):  # the first attempt is held at its charge
            first = pool.submit(keyed, checkout, order_body(user), key)
            eventually(running, timeout=10, what="the first attempt holding its key")
            retry = pool.submit(keyed, checkout, order_body(user), key)
            time.sleep(0.5)
            assert not retry.done(), "the retry did not wait for the attempt in progress"
        (placed, _), (replayed, retry_trace) = first.result(), retry.result()

    assert (placed.status_code, replayed.status_code) == (201, 201), replayed.text
    assert replayed.json() == placed.json()
    [(_, published)] = orders.orders_of(user, mark)
    assert published.order_id == placed.json()["order_id"]
    assert charges_of(telemetry, placed.json()["transaction_id"]) == 1
    assert_replayed_without_payment(telemetry, retry_trace)


def test_a_key_used_again_for_a_different_checkout_is_a_422_that_places_nothing(
    checkout: httpx.Client, cart: httpx.Client, orders: OrdersTopic, user: str
) -> None:
    fill(cart, user, (EXPLORASCOPE, 1))
    key = str(uuid.uuid4())
    assert keyed(checkout, order_body(user), key)[0].status_code == 201
    fill(cart, user, (STARSENSE, 1))
    mark = orders.mark()

    response, _ = keyed(checkout, order_body(user, email="other@example.com"), key)

    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["idempotency_key"]
    assert orders.orders_of(user, mark) == []
    assert cart_lines(cart, user) == {STARSENSE: 1}


def test_a_checkout_that_failed_on_a_peer_runs_again_when_retried_with_its_key(
    checkout: httpx.Client, cart: httpx.Client, orders: OrdersTopic, user: str, clean_flags: FlagsFile
) -> None:
    fill(cart, user, (EXPLORASCOPE, 1))
    mark, key = orders.mark(), str(uuid.uuid4())
    clean_flags.set(Flag.PAYMENT_UNREACHABLE, True)
    assert keyed(checkout, order_body(user), key)[0].status_code == 503
    clean_flags.clear()

    response, _ = keyed(checkout, order_body(user), key)

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    [(_, published)] = orders.orders_of(user, mark)
    assert published.order_id == response.json()["order_id"]


def test_a_malformed_idempotency_key_is_a_400_naming_it(checkout: httpx.Client, user: str) -> None:
    response, _ = keyed(checkout, order_body(user), "not a key!")
    assert response.status_code == 400
    assert "idempotency_key" in [f["field"] for f in response.json()["fields"]]


def test_the_openapi_document_describes_the_checkout_api(checkout: httpx.Client) -> None:
    operation = checkout.get("/openapi.json").json()["paths"]["/checkout"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    created = operation["responses"]["201"]["content"]["application/json"]["schema"]
    assert (request["title"], created["title"]) == ("CheckoutRequest", "Order")
    assert set(request["required"]) == {"user_id", "email", "address", "credit_card"}


# DynamoDB throttling or unreachable: a checkout whose checkouts table is behind a fault-injecting proxy


@pytest.fixture(scope="module")
def faults(aws_env: dict[str, str]) -> Iterator[DynamoDBFaults]:
    with dynamodb_faults(aws_env["AWS_ENDPOINT_URL"]) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def checkout_process(shop: Shop, checkout: httpx.Client, faults: DynamoDBFaults) -> Iterator[OwnProcess]:
    """A checkout process of its own, wired to the shop's peers, whose DynamoDB calls go through `faults`."""
    with own_process(shop, "checkout", AWS_ENDPOINT_URL=faults.url) as process:
        yield process


@pytest.fixture(scope="module")
def checkout_behind_faults(checkout_process: OwnProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=checkout_process.url, timeout=30) as client:
        yield client


def checkout_state(dynamodb: Any, user: str, key: str) -> str | None:
    """The state of `key` in the checkouts table ("running", "done"; None: no item), read around the proxy."""
    table = dynamodb.Table(CHECKOUTS_TABLE)
    item = table.get_item(Key={"checkout_key": f"{user}/{key}"}, ConsistentRead=True).get("Item")
    return None if item is None else str(item["state"])


def assert_not_charged(telemetry: TelemetryQuery, checkout: OwnProcess, trace_id: str) -> None:
    telemetry.wait_for_spans(trace_id=trace_id, service=checkout.telemetry_name, kind="SERVER", timeout=30)
    assert not [s for s in telemetry.trace(trace_id) if s.service == "payment"], "payment was called"


def test_a_short_throttle_of_the_checkouts_table_is_retried_unseen(
    checkout_behind_faults: httpx.Client,
    faults: DynamoDBFaults,
    cart: httpx.Client,
    orders: OrdersTopic,
    dynamodb: Any,
    user: str,
) -> None:
    fill(cart, user, (EXPLORASCOPE, 1))
    mark, key, before = orders.mark(), str(uuid.uuid4()), faults.throttled

    with faults.throttling(MAX_ATTEMPTS - 1):
        response, _ = keyed(checkout_behind_faults, order_body(user), key)

    assert faults.throttled - before == MAX_ATTEMPTS - 1
    assert response.status_code == 201, response.text
    [(_, published)] = orders.orders_of(user, mark)
    assert published.order_id == response.json()["order_id"]
    assert cart_lines(cart, user) == {}
    assert checkout_state(dynamodb, user, key) == "done"


def test_a_long_throttle_is_a_503_that_charges_nothing_and_the_same_checkout_then_places_one_order(
    checkout_process: OwnProcess,
    checkout_behind_faults: httpx.Client,
    faults: DynamoDBFaults,
    cart: httpx.Client,
    orders: OrdersTopic,
    telemetry: TelemetryQuery,
    dynamodb: Any,
    user: str,
) -> None:
    lines = fill(cart, user, (COMET_BOOK, 2))
    mark, key = orders.mark(), str(uuid.uuid4())

    with faults.throttling():
        started = time.monotonic()
        refused, refused_trace = keyed(checkout_behind_faults, order_body(user), key)
        assert time.monotonic() - started < 8

    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == (
        "checkouts table unavailable: DynamoDB is throttling requests "
        f"(ProvisionedThroughputExceededException) on table {CHECKOUTS_TABLE}; try again"
    )
    assert int(refused.headers["Retry-After"]) >= 1
    assert_not_charged(telemetry, checkout_process, refused_trace)
    assert orders.orders_of(user, mark) == []
    assert cart_lines(cart, user) == lines
    assert checkout_state(dynamodb, user, key) is None

    placed, _ = keyed(checkout_behind_faults, order_body(user), key)

    assert placed.status_code == 201, placed.text
    [(_, published)] = orders.orders_of(user, mark)
    assert published.order_id == placed.json()["order_id"]
    assert [(item.product_id, item.quantity) for item in published.items] == [(COMET_BOOK, 2)]
    assert cart_lines(cart, user) == {}


def test_an_order_placed_while_its_answer_cannot_be_stored_is_answered_and_its_answer_stored_later(
    checkout_behind_faults: httpx.Client,
    faults: DynamoDBFaults,
    cart: httpx.Client,
    orders: OrdersTopic,
    dynamodb: Any,
    user: str,
) -> None:
    fill(cart, user, (EXPLORASCOPE, 1))
    mark, key = orders.mark(), str(uuid.uuid4())

    with faults.throttling(operations=frozenset({"UpdateItem"})):  # the claim goes through, the answer not
        placed, _ = keyed(checkout_behind_faults, order_body(user), key)
        assert placed.status_code == 201, placed.text
        assert checkout_state(dynamodb, user, key) == "running"

    eventually(
        lambda: checkout_state(dynamodb, user, key) == "done",
        timeout=10,
        what="the answer stored once DynamoDB takes writes again",
    )
    replayed, _ = keyed(checkout_behind_faults, order_body(user), key)
    assert replayed.status_code == 201
    assert replayed.json() == placed.json()
    assert replayed.headers["Idempotent-Replayed"] == "true"
    [(_, published)] = orders.orders_of(user, mark)
    assert published.order_id == placed.json()["order_id"]


def test_dynamodb_unreachable_is_a_quick_503_that_places_nothing_and_checkout_works_again_when_it_is_back(
    checkout_behind_faults: httpx.Client,
    faults: DynamoDBFaults,
    cart: httpx.Client,
    orders: OrdersTopic,
    user: str,
) -> None:
    lines = fill(cart, user, (STARSENSE, 1))
    mark, key = orders.mark(), str(uuid.uuid4())

    faults.stop()
    try:
        started = time.monotonic()
        refused, _ = keyed(checkout_behind_faults, order_body(user), key)
        assert time.monotonic() - started < 8
    finally:
        faults.start()

    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == (
        "checkouts table unavailable: DynamoDB cannot be reached (EndpointConnectionError) "
        f"on table {CHECKOUTS_TABLE}; try again"
    )
    assert int(refused.headers["Retry-After"]) >= 1
    assert orders.orders_of(user, mark) == []
    assert cart_lines(cart, user) == lines
    assert keyed(checkout_behind_faults, order_body(user), key)[0].status_code == 201
    assert len(orders.orders_of(user, mark)) == 1

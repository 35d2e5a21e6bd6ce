"""cart over HTTP: carts kept in the real DynamoDB table, atomic adds, every rejection, both flags, and
DynamoDB throttling or unreachable (retried unseen when short, a clear 503 that changes nothing when long)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.common.aws import MAX_ATTEMPTS
from services.common.flag_contract import Flag
from tests.services.own_process import own_process
from tests.support.dynamodb_faults import DynamoDBFaults, dynamodb_faults
from tests.support.shop import CART_TABLE, FlagsFile, Shop

TELESCOPE = "OLJCESPC7Z"
REFRACTOR = "66VCHSJNUP"


@pytest.fixture(scope="module")
def cart(shop: Shop) -> httpx.Client:
    shop.ensure("cart")
    return httpx.Client(base_url=shop.url("cart"), timeout=10)


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def add(cart: httpx.Client, user: str, product_id: str = TELESCOPE, quantity: Any = 1) -> httpx.Response:
    return cart.post(f"/carts/{user}/items", json={"product_id": product_id, "quantity": quantity})


def lines(cart: httpx.Client, user: str) -> dict[str, int]:
    response = cart.get(f"/carts/{user}")
    assert response.status_code == 200
    return {line["product_id"]: line["quantity"] for line in response.json()["items"]}


def test_a_new_user_has_an_empty_cart(cart: httpx.Client, user: str) -> None:
    response = cart.get(f"/carts/{user}")
    assert response.status_code == 200
    assert response.json() == {"user_id": user, "items": []}


def test_adding_items_answers_the_whole_cart(cart: httpx.Client, user: str) -> None:
    add(cart, user, TELESCOPE, 2)
    response = add(cart, user, REFRACTOR, 1)
    assert response.status_code == 200
    assert response.json() == {
        "user_id": user,
        "items": [{"product_id": REFRACTOR, "quantity": 1}, {"product_id": TELESCOPE, "quantity": 2}],
    }


def test_adding_a_product_already_in_the_cart_adds_to_its_line(cart: httpx.Client, user: str) -> None:
    add(cart, user, TELESCOPE, 2)
    add(cart, user, TELESCOPE, 3)
    assert lines(cart, user) == {TELESCOPE: 5}


def test_concurrent_adds_to_one_line_are_all_counted(cart: httpx.Client, user: str) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: add(cart, user, TELESCOPE, 1).status_code, range(16)))
    assert statuses == [200] * 16
    assert lines(cart, user) == {TELESCOPE: 16}


def test_emptying_a_cart_removes_every_line(cart: httpx.Client, user: str) -> None:
    add(cart, user, TELESCOPE, 2)
    response = cart.delete(f"/carts/{user}")
    assert response.status_code == 204
    assert lines(cart, user) == {}


def test_emptying_a_cart_that_does_not_exist_is_fine(cart: httpx.Client, user: str) -> None:
    assert cart.delete(f"/carts/{user}").status_code == 204


def test_the_cart_is_one_item_in_the_dynamodb_table(cart: httpx.Client, user: str, dynamodb: Any) -> None:
    add(cart, user, TELESCOPE, 2)
    add(cart, user, REFRACTOR, 4)
    item = dynamodb.Table(CART_TABLE).get_item(Key={"user_id": user}, ConsistentRead=True)["Item"]
    assert item == {"user_id": user, "items": {TELESCOPE: Decimal(2), REFRACTOR: Decimal(4)}}


def test_a_cart_survives_a_restart_of_the_cart_service(shop: Shop, cart: httpx.Client, user: str) -> None:
    add(cart, user, REFRACTOR, 3)
    shop.restart("cart")
    assert lines(cart, user) == {REFRACTOR: 3}


@pytest.mark.parametrize(
    "user_id", ["has.dot", "x" * 65, "sp%20ace", "%C3%A9t%C3%A9"], ids=["dot", "too-long", "space", "accent"]
)
def test_an_invalid_user_id_is_a_400_naming_user_id(cart: httpx.Client, user_id: str) -> None:
    responses = [
        cart.get(f"/carts/{user_id}"),
        add(cart, user_id),
        cart.delete(f"/carts/{user_id}"),
    ]
    for response in responses:
        assert response.status_code == 400
        assert [f["field"] for f in response.json()["fields"]] == ["user_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"product_id": TELESCOPE, "quantity": 0}, "quantity"),
        ({"product_id": TELESCOPE, "quantity": 101}, "quantity"),
        ({"product_id": TELESCOPE, "quantity": "many"}, "quantity"),
        ({"product_id": TELESCOPE}, "quantity"),
        ({"quantity": 1}, "product_id"),
        ({"product_id": "", "quantity": 1}, "product_id"),
        ({"product_id": "no/slashes", "quantity": 1}, "product_id"),
    ],
    ids=["zero", "over-100", "not-a-number", "no-quantity", "no-product", "empty-product", "bad-product"],
)
def test_a_malformed_add_is_a_400_naming_the_field(
    cart: httpx.Client, user: str, body: dict[str, Any], field: str
) -> None:
    response = cart.post(f"/carts/{user}/items", json=body)
    assert response.status_code == 400
    assert field in [f["field"] for f in response.json()["fields"]]
    assert lines(cart, user) == {}


def test_an_add_that_is_not_json_is_a_400(cart: httpx.Client, user: str) -> None:
    response = cart.post(
        f"/carts/{user}/items", content=b"two telescopes", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_a_cart_holds_at_most_100_different_products(cart: httpx.Client, user: str) -> None:
    for index in range(100):
        assert add(cart, user, f"P{index:03d}").status_code == 200
    full = add(cart, user, "P100")
    assert full.status_code == 400
    assert [f["field"] for f in full.json()["fields"]] == ["product_id"]
    assert add(cart, user, "P007", 2).status_code == 200
    assert lines(cart, user)["P007"] == 3


def test_cart_failure_fails_adding_and_emptying_but_not_reading(
    cart: httpx.Client, user: str, clean_flags: FlagsFile
) -> None:
    add(cart, user, TELESCOPE, 1)
    clean_flags.set(Flag.CART_FAILURE, True)
    for response in (add(cart, user, TELESCOPE, 1), cart.delete(f"/carts/{user}")):
        assert response.status_code == 503
        assert "(cartFailure)" in response.json()["error"]
    assert lines(cart, user) == {TELESCOPE: 1}
    clean_flags.clear()
    assert add(cart, user, TELESCOPE, 1).status_code == 200


def test_failed_readiness_probe_makes_the_cart_unready_while_on(
    cart: httpx.Client, clean_flags: FlagsFile
) -> None:
    assert cart.get("/readyz").status_code == 200
    assert "Connection" not in cart.get("/carts/shedding").headers
    clean_flags.set(Flag.FAILED_READINESS_PROBE, True)
    unready = cart.get("/readyz")
    assert unready.status_code == 503
    assert "failedReadinessProbe" in unready.json()["checks"]["failedReadinessProbe"]
    # an unready pod still serves, but closes each connection after its answer, so that a caller's
    # pooled connection does not keep it in service past what the Service and the ALB know
    served = cart.get("/carts/shedding")
    assert (served.status_code, served.headers.get("Connection")) == (200, "close")
    assert cart.get("/healthz").status_code == 200
    clean_flags.clear()
    assert cart.get("/readyz").status_code == 200
    assert "Connection" not in cart.get("/carts/shedding").headers


def test_the_openapi_document_describes_the_cart_api(cart: httpx.Client) -> None:
    paths = cart.get("/openapi.json").json()["paths"]
    assert {"/carts/{user_id}", "/carts/{user_id}/items"} <= set(paths)


# DynamoDB throttling or unreachable: the cart behind a fault-injecting proxy to the same emulator

THROTTLED_MESSAGE = (
    f"cart store unavailable: DynamoDB is throttling requests (ProvisionedThroughputExceededException) "
    f"on table {CART_TABLE}; try again"
)
#: a 503 comes after the SDK's attempts and backoff (at most 1 + 2 s), not after a hang
UNAVAILABLE_WITHIN_SECONDS = 8.0


@pytest.fixture(scope="module")
def faults(aws_env: dict[str, str]) -> Iterator[DynamoDBFaults]:
    with dynamodb_faults(aws_env["AWS_ENDPOINT_URL"]) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def cart_behind_faults(shop: Shop, faults: DynamoDBFaults) -> Iterator[httpx.Client]:
    """A cart process of its own whose DynamoDB calls go through `faults`."""
    with (
        own_process(shop, "cart", AWS_ENDPOINT_URL=faults.url) as process,
        httpx.Client(base_url=process.url, timeout=30) as client,
    ):
        yield client


def stored_lines(dynamodb: Any, user: str) -> dict[str, int]:
    """The user's cart as the table holds it, read around the proxy."""
    item = dynamodb.Table(CART_TABLE).get_item(Key={"user_id": user}, ConsistentRead=True).get("Item", {})
    return {product_id: int(quantity) for product_id, quantity in item.get("items", {}).items()}


def assert_unavailable(response: httpx.Response, message: str, started: float) -> None:
    assert time.monotonic() - started < UNAVAILABLE_WITHIN_SECONDS
    assert response.status_code == 503, response.text
    assert response.json()["error"] == message
    assert int(response.headers["Retry-After"]) >= 1


def test_a_short_throttle_of_dynamodb_is_retried_unseen_and_the_add_counted_once(
    cart_behind_faults: httpx.Client, faults: DynamoDBFaults, user: str, dynamodb: Any
) -> None:
    add(cart_behind_faults, user, TELESCOPE, 2)
    before = faults.throttled

    with faults.throttling(MAX_ATTEMPTS - 1):
        response = add(cart_behind_faults, user, TELESCOPE, 3)

    assert faults.throttled - before == MAX_ATTEMPTS - 1
    assert response.status_code == 200
    assert response.json()["items"] == [{"product_id": TELESCOPE, "quantity": 5}]
    assert stored_lines(dynamodb, user) == {TELESCOPE: 5}


def test_a_long_throttle_is_a_503_naming_dynamodb_that_changes_nothing_until_it_ends(
    cart_behind_faults: httpx.Client, faults: DynamoDBFaults, user: str, dynamodb: Any
) -> None:
    add(cart_behind_faults, user, TELESCOPE, 1)
    before = faults.throttled

    with faults.throttling():
        started = time.monotonic()
        response = add(cart_behind_faults, user, TELESCOPE, 2)
        assert_unavailable(response, THROTTLED_MESSAGE, started)
        assert faults.throttled - before == MAX_ATTEMPTS, "the SDK did not retry with its standard budget"
        started = time.monotonic()
        assert_unavailable(cart_behind_faults.get(f"/carts/{user}"), THROTTLED_MESSAGE, started)
        assert stored_lines(dynamodb, user) == {TELESCOPE: 1}

    assert add(cart_behind_faults, user, TELESCOPE, 2).status_code == 200
    assert lines(cart_behind_faults, user) == {TELESCOPE: 3}
    assert stored_lines(dynamodb, user) == {TELESCOPE: 3}


def test_dynamodb_unreachable_is_a_quick_503_and_the_cart_works_again_when_it_is_back(
    cart_behind_faults: httpx.Client, faults: DynamoDBFaults, user: str, dynamodb: Any
) -> None:
    add(cart_behind_faults, user, REFRACTOR, 1)

    faults.stop()
    try:
        started = time.monotonic()
        response = add(cart_behind_faults, user, REFRACTOR, 1)
        assert_unavailable(
            response,
            f"cart store unavailable: DynamoDB cannot be reached (EndpointConnectionError) "
            f"on table {CART_TABLE}; try again",
            started,
        )
    finally:
        faults.start()

    assert stored_lines(dynamodb, user) == {REFRACTOR: 1}
    assert add(cart_behind_faults, user, REFRACTOR, 1).status_code == 200
    assert lines(cart_behind_faults, user) == {REFRACTOR: 2}

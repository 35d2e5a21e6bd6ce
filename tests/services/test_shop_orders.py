"""A whole order through the shop: frontend-proxy -> frontend -> checkout -> payment, with cart and
catalog, to both Kafka consumers, over real HTTP, the real Tansu broker and the real moto server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.common.flags import Flag
from tests.support.shop import ORDERS_TABLE, FlagsFile, Shop
from tests.support.shopper import Shopper, metric_value
from tests.support.waiting import eventually

DUPLICATES = 3


@pytest.fixture(scope="module")
def whole_shop(shop: Shop) -> Shop:
    shop.ensure()
    return shop


@pytest.fixture
def shopper(whole_shop: Shop) -> Shopper:
    return Shopper(whole_shop.url("frontend-proxy"))


def stored_order(dynamodb: Any, order_id: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        dynamodb.Table(ORDERS_TABLE).get_item(Key={"order_id": order_id}).get("Item")
    )
    return item


def fraud_record(whole_shop: Shop, order_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{whole_shop.url('fraud-detection')}/orders/{order_id}", timeout=10)
    return response.json() if response.status_code == 200 else None


def test_an_order_placed_through_the_proxy_reaches_accounting_and_fraud_detection(
    whole_shop: Shop, shopper: Shopper, dynamodb: Any
) -> None:
    assert shopper.add("OLJCESPC7Z", 2).status_code == 200
    assert shopper.add("66VCHSJNUP").status_code == 200

    response = shopper.checkout()

    assert response.status_code == 201, response.text
    order = response.json()
    assert {item["product_id"]: item["quantity"] for item in order["items"]} == {
        "OLJCESPC7Z": 2,
        "66VCHSJNUP": 1,
    }
    assert shopper.cart()["items"] == []
    stored = eventually(
        lambda: stored_order(dynamodb, order["order_id"]), what="the order in the orders table"
    )
    assert stored["transaction_id"] == order["transaction_id"]
    assert eventually(lambda: fraud_record(whole_shop, order["order_id"]))["deliveries"] == 1


def test_an_order_duplicated_by_kafka_queue_problems_is_written_once(
    whole_shop: Shop, shopper: Shopper, dynamodb: Any, clean_flags: FlagsFile
) -> None:
    accounting_metrics = f"{whole_shop.url('accounting')}/metrics"
    duplicates_before = metric_value(accounting_metrics, "app_accounting_orders_total", result="duplicate")
    clean_flags.set(Flag.KAFKA_QUEUE_PROBLEMS, DUPLICATES)
    shopper.add("L9ECAV7KIM")

    order = shopper.checkout().json()

    def delivered_every_copy() -> bool:
        record = fraud_record(whole_shop, order["order_id"])
        return record is not None and record["deliveries"] == DUPLICATES + 1

    eventually(delivered_every_copy, what=f"{DUPLICATES + 1} deliveries at fraud-detection")
    eventually(
        lambda: (
            metric_value(accounting_metrics, "app_accounting_orders_total", result="duplicate")
            >= duplicates_before + DUPLICATES
        ),
        what="accounting seeing the duplicates",
    )
    matching = dynamodb.Table(ORDERS_TABLE).scan(
        FilterExpression="order_id = :id", ExpressionAttributeValues={":id": order["order_id"]}
    )["Items"]
    assert len(matching) == 1


def test_a_refused_card_places_no_order_and_keeps_the_cart(shopper: Shopper) -> None:
    shopper.add("2ZYFJ3GM2N")
    bad_card = {"number": "4432801561520455", "cvv": "672", "expiration_year": 2039, "expiration_month": 1}

    response = shopper.checkout(credit_card=bad_card)

    assert response.status_code == 400
    assert "credit_card.number" in [field["field"] for field in response.json()["fields"]]
    assert [item["product_id"] for item in shopper.cart()["items"]] == ["2ZYFJ3GM2N"]

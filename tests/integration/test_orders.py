"""An order placed at the ALB travels over Kafka to both consumers: accounting writes it to the orders
table once and fraud-detection assesses it once, also when `kafkaQueueProblems` makes checkout publish it
several times; afterwards neither consumer group lags behind the topic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.common.flag_contract import Flag
from tests.integration.observe import (
    CONSUMER_GROUPS,
    PlacedOrder,
    place_order,
    processing_spans,
    publishes,
    wait_for_no_lag,
)
from tests.integration.stages import Stage
from tests.support.jaeger import JaegerQuery
from tests.support.shopper import Shopper
from tests.support.waiting import eventually, until

COPIES = 3
ORDER_SERVICES = ("accounting", "fraud-detection")


def stored_order(stage: Stage, order_id: str) -> dict[str, Any] | None:
    table = stage.settings.orders_table
    item = stage.aws("dynamodb").get_item(TableName=table, Key={"order_id": {"S": order_id}}).get("Item")
    return item  # type: ignore[no-any-return]


def review(stage: Stage, order_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{stage.service_url('fraud-detection')}/orders/{order_id}", timeout=10)
    return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]


def wait_until_processed(telemetry: JaegerQuery, order: PlacedOrder, deliveries: int) -> list[Any]:
    """The order's trace once each consumer has processed `deliveries` copies of it."""

    def complete() -> list[Any] | None:
        spans = telemetry.trace(order.trace_id)
        counts = [len(processing_spans(spans, service, order.order_id)) for service in ORDER_SERVICES]
        return spans if all(n >= deliveries for n in counts) else None

    return eventually(complete, timeout=90, interval=0.5, what=f"{deliveries} deliveries to each consumer")


@pytest.fixture
def queue_problems(stage: Stage) -> Iterator[None]:
    stage.set_flag(Flag.KAFKA_QUEUE_PROBLEMS.value, str(COPIES))
    try:
        yield
    finally:
        stage.set_flag(Flag.KAFKA_QUEUE_PROBLEMS.value, "off")


def test_an_order_is_written_by_accounting_once_and_assessed_by_fraud_detection_once(
    stage: Stage, shopper: Shopper, telemetry: JaegerQuery
) -> None:
    order = place_order(shopper, quantity=2)

    spans = wait_until_processed(telemetry, order, deliveries=1)

    stored = eventually(lambda: stored_order(stage, order.order_id), what="the order in the orders table")
    assert stored["transaction_id"]["S"] == order.body["transaction_id"]
    [written] = processing_spans(spans, "accounting", order.order_id)
    assert written.attributes["app.accounting.result"] == "written"
    assert len(processing_spans(spans, "fraud-detection", order.order_id)) == 1
    assert (
        eventually(lambda: review(stage, order.order_id), what="fraud-detection's review")["deliveries"] == 1
    )


def test_with_kafka_queue_problems_every_copy_arrives_and_the_order_still_counts_once(
    stage: Stage, shopper: Shopper, telemetry: JaegerQuery, queue_problems: None
) -> None:
    # the first orders may reach checkout before the flag does: the first one published again is the test's
    order = until(
        lambda: place_order(shopper),
        lambda placed: publishes(telemetry, placed) == COPIES + 1,
        timeout=60,
        what=f"an order published {COPIES + 1} times",
    )

    spans = wait_until_processed(telemetry, order, deliveries=COPIES + 1)

    results = [
        s.attributes["app.accounting.result"] for s in processing_spans(spans, "accounting", order.order_id)
    ]
    assert sorted(results) == ["duplicate"] * COPIES + ["written"]
    assessed = [s for s in spans if s.service == "fraud-detection" and s.name == "assess order"]
    assert len(assessed) == 1, "fraud-detection assessed a duplicate again"
    assert stored_order(stage, order.order_id) is not None
    assert eventually(lambda: review(stage, order.order_id))["deliveries"] == COPIES + 1


def test_a_refused_card_places_no_order_and_keeps_the_cart(shopper: Shopper) -> None:
    assert shopper.add("2ZYFJ3GM2N").status_code == 200
    bad_card = {"number": "4432801561520455", "cvv": "672", "expiration_year": 2039, "expiration_month": 1}

    response = shopper.checkout(credit_card=bad_card)

    assert response.status_code == 400
    assert "credit_card.number" in [field["field"] for field in response.json()["fields"]]
    assert [item["product_id"] for item in shopper.cart()["items"]] == ["2ZYFJ3GM2N"]


def test_the_consumer_groups_catch_up_with_the_topic(stage: Stage, shopper: Shopper) -> None:
    for _ in range(3):
        place_order(shopper)
    for group in CONSUMER_GROUPS:
        wait_for_no_lag(stage, group)

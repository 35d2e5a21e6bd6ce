"""accounting over the real Tansu broker and the real moto server: every order written once, read back
exactly, unreadable messages skipped, and no order lost or doubled when the consumer is killed or stopped."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.money import Money
from services.common.orders import OrderPlaced, schema_header
from tests.support.order_events import as_message, order_event, publish, publish_orders
from tests.support.shop import ORDERS_TABLE, Shop
from tests.support.shopper import metric_value, new_traceparent
from tests.support.waiting import eventually

BATCH = 200
# The messages are consumed while at least this many are written and not all: the consumer is mid-stream.
MID_STREAM = 20
# After a SIGKILL, a write the dead process had sent may still land: let the emulator finish it.
SETTLE_SECONDS = 1.0
ORDERS_METRIC = "app_accounting_orders_total"
LAG_METRIC = "messaging_kafka_consumer_lag"
REJECTED_METRIC = "messaging_process_rejected_total"


@pytest.fixture(scope="module")
def accounting(shop: Shop) -> httpx.Client:
    shop.ensure("accounting")
    return httpx.Client(base_url=shop.url("accounting"), timeout=10)


def metric(accounting: httpx.Client, name: str, **labels: str) -> float:
    return metric_value(str(accounting.base_url.join("/metrics")), name, **labels)


def recorded(accounting: httpx.Client, order_id: str) -> dict[str, Any] | None:
    response = accounting.get(f"/orders/{order_id}")
    return response.json() if response.status_code == 200 else None


def stored_ids(dynamodb: Any, wanted: Iterable[str]) -> Counter[str]:
    """How many items of the orders table carry each of the `wanted` order ids (a full scan)."""
    wanted = set(wanted)
    table = dynamodb.Table(ORDERS_TABLE)
    found: Counter[str] = Counter()
    scan: dict[str, Any] = {"ProjectionExpression": "order_id", "ConsistentRead": True}
    while True:
        page = table.scan(**scan)
        found.update(item["order_id"] for item in page["Items"] if item["order_id"] in wanted)
        if "LastEvaluatedKey" not in page:
            return found
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_an_order_is_written_with_its_money_exact_and_can_be_read_back(
    accounting: httpx.Client, kafka_bootstrap: str, dynamodb: Any
) -> None:
    order = order_event(items=[("OLJCESPC7Z", 3, "1234.99"), ("66VCHSJNUP", 1, "0.000000001")])
    publish_orders(kafka_bootstrap, [order])

    body = eventually(lambda: recorded(accounting, order.order_id), what="the order at GET /orders/<id>")

    assert OrderPlaced.model_validate(body) == order
    assert body["recorded_at"]
    item = dynamodb.Table(ORDERS_TABLE).get_item(Key={"order_id": order.order_id})["Item"]
    assert item["total"] == {"currency_code": "USD", "units": Decimal(3713), "nanos": Decimal(960_000_001)}
    stored = Money.model_validate(item["total"], strict=False)  # DynamoDB's numbers are Decimals
    assert stored == order.total == Money.from_decimal("3713.960000001")


def test_a_duplicated_message_is_written_once_and_counted_as_a_duplicate(
    accounting: httpx.Client, kafka_bootstrap: str, dynamodb: Any
) -> None:
    duplicates_before = metric(accounting, ORDERS_METRIC, result="duplicate")
    order = order_event()
    publish_orders(kafka_bootstrap, [order, order])
    first = eventually(lambda: recorded(accounting, order.order_id), what="the order recorded")

    eventually(
        lambda: metric(accounting, ORDERS_METRIC, result="duplicate") == duplicates_before + 1,
        what="the second copy counted as a duplicate",
    )
    assert stored_ids(dynamodb, [order.order_id]) == {order.order_id: 1}
    assert recorded(accounting, order.order_id) == first  # the first write was not overwritten


def test_unreadable_messages_are_skipped_and_later_orders_are_still_written(
    accounting: httpx.Client, kafka_bootstrap: str
) -> None:
    rejected_before = metric(accounting, REJECTED_METRIC)
    future_version = order_event().model_dump(mode="json") | {"schema_version": 2}
    empty_id = order_event().model_dump(mode="json") | {"order_id": ""}  # no DynamoDB key could hold it
    good = order_event()
    publish(
        kafka_bootstrap,
        [
            ("garbage", b"\x00not an order", [schema_header()]),
            ("empty", b"", [schema_header()]),
            ("future", json.dumps(future_version).encode(), [schema_header()]),
            ("empty-id", json.dumps(empty_id).encode(), [schema_header()]),
            as_message(good),
        ],
    )

    eventually(lambda: recorded(accounting, good.order_id), what="the good order after the unreadable ones")
    assert metric(accounting, REJECTED_METRIC) == rejected_before + 4


def test_the_process_log_line_carries_the_producers_trace_id(
    shop: Shop, accounting: httpx.Client, kafka_bootstrap: str
) -> None:
    traceparent, trace_id = new_traceparent()
    order = order_event()
    publish(kafka_bootstrap, [as_message(order, ("traceparent", traceparent.encode()))])
    eventually(lambda: recorded(accounting, order.order_id), what="the traced order recorded")

    log = shop.workdir / "logs" / "accounting.log"
    lines = eventually(
        lambda: [line for line in log.read_text().splitlines() if order.order_id in line],
        what="accounting's log line for the order",
    )
    assert all(f"trace_id={trace_id}" in line for line in lines), lines


def test_an_unknown_order_is_a_json_404(accounting: httpx.Client) -> None:
    for path in ("/orders/no-such-order", f"/orders/{'x' * 3000}", "/no-such-path"):
        response = accounting.get(path)
        assert response.status_code == 404, path
        assert response.json()["status"] == 404


def test_the_consumer_lag_is_exported_and_returns_to_zero(
    accounting: httpx.Client, kafka_bootstrap: str
) -> None:
    orders = [order_event() for _ in range(20)]
    publish_orders(kafka_bootstrap, orders)
    eventually(lambda: recorded(accounting, orders[-1].order_id), what="the last order recorded")

    exported = text_string_to_metric_families(accounting.get("/metrics").text)
    assert {"group": "accounting", "topic": "orders"}.items() <= next(
        sample.labels for family in exported for sample in family.samples if sample.name == LAG_METRIC
    ).items()
    eventually(lambda: metric(accounting, LAG_METRIC, group="accounting") == 0, what="a lag of 0")


def test_accounting_is_ready_with_its_table_and_its_partitions(accounting: httpx.Client) -> None:
    response = accounting.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"orders-table": "ok", "kafka-consumer": "ok"}


def test_the_openapi_document_describes_the_orders_api(accounting: httpx.Client) -> None:
    document = accounting.get("/openapi.json").json()
    found = document["paths"]["/orders/{order_id}"]["get"]["responses"]["200"]
    assert found["content"]["application/json"]["schema"]["title"] == "RecordedOrder"


def test_a_consumer_killed_mid_stream_loses_no_order_and_writes_none_twice(
    shop: Shop, accounting: httpx.Client, kafka_bootstrap: str, dynamodb: Any
) -> None:
    orders = [order_event() for _ in range(BATCH)]
    ids = {order.order_id for order in orders}
    publish_orders(kafka_bootstrap, orders)
    eventually(lambda: len(stored_ids(dynamodb, ids)) >= MID_STREAM, what=f"{MID_STREAM} orders written")

    shop.kill("accounting")
    time.sleep(SETTLE_SECONDS)
    written_before_kill = len(stored_ids(dynamodb, ids))
    assert written_before_kill < BATCH, "the consumer finished before it was killed"
    shop.start(["accounting"])
    shop.wait_ready(["accounting"])

    eventually(lambda: stored_ids(dynamodb, ids).keys() == ids, timeout=90, what="every order written")
    assert set(stored_ids(dynamodb, ids).values()) == {1}
    # The restarted process wrote exactly the orders missing at the kill: none a second time.
    missing = BATCH - written_before_kill
    eventually(lambda: metric(accounting, ORDERS_METRIC, result="written") >= missing, what="the count")
    assert metric(accounting, ORDERS_METRIC, result="written") == missing


def test_sigterm_stops_accounting_gracefully_with_its_offsets_committed(
    shop: Shop, accounting: httpx.Client, kafka_bootstrap: str, dynamodb: Any
) -> None:
    orders = [order_event() for _ in range(BATCH)]
    ids = {order.order_id for order in orders}
    publish_orders(kafka_bootstrap, orders)
    eventually(lambda: len(stored_ids(dynamodb, ids)) >= MID_STREAM, what=f"{MID_STREAM} orders written")

    assert shop.stop("accounting") == 0
    written_before_stop = len(stored_ids(dynamodb, ids))
    assert written_before_stop < BATCH, "the consumer finished before it was stopped"
    shop.start(["accounting"])
    shop.wait_ready(["accounting"])

    eventually(lambda: stored_ids(dynamodb, ids).keys() == ids, timeout=90, what="every order written")
    missing = BATCH - written_before_stop
    eventually(lambda: metric(accounting, ORDERS_METRIC, result="written") >= missing, what="the count")
    assert metric(accounting, ORDERS_METRIC, result="written") == missing
    # Each partition is consumed in order, so a message redelivered after the restart would have come
    # before the last new one: with every order written, no duplicate means nothing was processed twice.
    assert metric(accounting, ORDERS_METRIC, result="duplicate") == 0


def test_accounting_is_not_ready_and_answers_503_while_its_table_is_unreachable(
    shop: Shop, accounting: httpx.Client
) -> None:
    shop.stop("accounting")
    try:
        shop.start(["accounting"], extra_env={"ORDERS_TABLE": "no-such-table"})
        eventually(lambda: accounting.get("/readyz").json()["checks"]["kafka-consumer"] == "ok")

        readiness = accounting.get("/readyz")
        assert readiness.status_code == 503
        assert "no-such-table" in readiness.json()["checks"]["orders-table"]
        assert accounting.get("/orders/anything").status_code == 503
    finally:
        shop.stop("accounting")
        shop.start(["accounting"])
        shop.wait_ready(["accounting"])

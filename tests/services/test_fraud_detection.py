"""fraud-detection over the real Tansu broker: orders scored by the rules, suspicious ones flagged and
listed, redeliveries counted, unreadable messages skipped, and kafkaQueueProblems slowing the consumer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.common.flag_contract import Flag
from services.common.orders import encode, schema_header
from tests.support.order_events import as_message, order_event, publish, publish_orders
from tests.support.shop import FlagsFile, Shop
from tests.support.shopper import metric_value
from tests.support.waiting import eventually

LAG_METRIC = "messaging_kafka_consumer_lag"
# At 50 ms a message under kafkaQueueProblems, this many take about 4 s: long enough to see the lag.
SLOW_BATCH = 80


@pytest.fixture(scope="module")
def fraud(shop: Shop) -> httpx.Client:
    shop.ensure("fraud-detection")
    return httpx.Client(base_url=shop.url("fraud-detection"), timeout=10)


def metric(fraud: httpx.Client, name: str, **labels: str) -> float:
    return metric_value(str(fraud.base_url.join("/metrics")), name, **labels)


def review(fraud: httpx.Client, order_id: str) -> dict[str, Any] | None:
    response = fraud.get(f"/orders/{order_id}")
    return response.json() if response.status_code == 200 else None


def flagged_ids(fraud: httpx.Client) -> list[str]:
    return [order["order_id"] for order in fraud.get("/flagged", params={"limit": 1000}).json()["orders"]]


def test_a_suspicious_order_is_flagged_with_its_reasons_and_a_normal_one_is_not(
    fraud: httpx.Client, kafka_bootstrap: str
) -> None:
    flagged_before = metric(fraud, "app_fraud_detection_flagged_total")
    normal = order_event()
    suspicious = order_event(items=[("OLJCESPC7Z", 30, "101.96")], email="buyer@example.ng")
    publish_orders(kafka_bootstrap, [normal, suspicious])

    normal_review = eventually(lambda: review(fraud, normal.order_id), what="the normal order reviewed")
    suspicious_review = eventually(lambda: review(fraud, suspicious.order_id), what="the suspicious one")

    assert normal_review == {
        "order_id": normal.order_id,
        "score": 0,
        "flagged": False,
        "reasons": [],
        "deliveries": 1,
    }
    assert suspicious_review["flagged"] is True
    assert set(suspicious_review["reasons"]) == {"bulk_quantity", "country_mismatch"}
    assert suspicious_review["score"] >= 50
    listed = flagged_ids(fraud)
    assert suspicious.order_id in listed
    assert normal.order_id not in listed
    assert metric(fraud, "app_fraud_detection_flagged_total") == flagged_before + 1


def test_the_flagged_list_is_newest_first_and_limited(fraud: httpx.Client, kafka_bootstrap: str) -> None:
    tampered = [order_event(total={"currency_code": "USD", "units": 1}) for _ in range(3)]
    # One key, so one partition: consumed in the order published.
    publish(kafka_bootstrap, [("one-shopper", encode(order), [schema_header()]) for order in tampered])
    eventually(lambda: review(fraud, tampered[-1].order_id), what="the last tampered order reviewed")

    newest = fraud.get("/flagged", params={"limit": 2}).json()["orders"]

    assert [order["order_id"] for order in newest] == [tampered[2].order_id, tampered[1].order_id]
    assert all(order["reasons"] == ["inconsistent_total"] for order in newest)


def test_a_redelivered_order_counts_its_deliveries(fraud: httpx.Client, kafka_bootstrap: str) -> None:
    repeats_before = metric(fraud, "app_fraud_detection_processed_total", delivery="repeat")
    order = order_event()
    publish_orders(kafka_bootstrap, [order, order, order])

    eventually(
        lambda: (review(fraud, order.order_id) or {}).get("deliveries") == 3, what="three deliveries counted"
    )
    assert metric(fraud, "app_fraud_detection_processed_total", delivery="repeat") == repeats_before + 2


def test_unreadable_messages_are_skipped_and_later_orders_are_still_reviewed(
    fraud: httpx.Client, kafka_bootstrap: str
) -> None:
    good = order_event()
    publish(
        kafka_bootstrap,
        [("garbage", b"{not json", [schema_header()]), ("empty", b"", [schema_header()]), as_message(good)],
    )

    assert eventually(lambda: review(fraud, good.order_id), what="the good order reviewed")["deliveries"] == 1


def test_kafka_queue_problems_delays_the_consumer_until_the_flag_is_off(
    fraud: httpx.Client, kafka_bootstrap: str, clean_flags: FlagsFile
) -> None:
    clean_flags.set(Flag.KAFKA_QUEUE_PROBLEMS, 1)
    orders = [order_event() for _ in range(SLOW_BATCH)]
    publish_orders(kafka_bootstrap, orders)

    eventually(lambda: metric(fraud, LAG_METRIC, group="fraud-detection") > 0, what="consumer lag")
    clean_flags.clear()

    eventually(lambda: review(fraud, orders[-1].order_id), what="the last order reviewed")
    eventually(lambda: metric(fraud, LAG_METRIC, group="fraud-detection") == 0, what="a lag of 0")


def test_fraud_detection_is_ready_once_its_consumer_has_partitions(fraud: httpx.Client) -> None:
    response = fraud.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"kafka-consumer": "ok"}


def test_an_unknown_order_or_path_is_a_json_404(fraud: httpx.Client) -> None:
    for path in ("/orders/no-such-order", "/no-such-path"):
        response = fraud.get(path)
        assert response.status_code == 404, path
        assert response.json()["status"] == 404


def test_the_openapi_document_describes_the_review_api(fraud: httpx.Client) -> None:
    document = fraud.get("/openapi.json").json()
    assert {"/orders/{order_id}", "/flagged"} <= document["paths"].keys()
    assert "OrderReview" in document["components"]["schemas"]


@pytest.mark.parametrize("limit", ["0", "1001", "many"])
def test_a_bad_flagged_limit_is_a_400_naming_it(fraud: httpx.Client, limit: str) -> None:
    response = fraud.get("/flagged", params={"limit": limit})
    assert response.status_code == 400
    assert [field["field"] for field in response.json()["fields"]] == ["limit"]

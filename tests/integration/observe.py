"""What the suite reads of a stage besides the shop's answers: orders placed with a known trace, the
consumer groups' lag as the broker sees it, Prometheus' view of the services, the workloads' state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import Pod

from infra.k8s.rollout import rollout_state
from services.common.orders import ORDERS_TOPIC
from tests.integration.stages import Stage
from tests.support.jaeger import JaegerQuery, Span
from tests.support.shopper import Shopper, new_traceparent
from tests.support.waiting import eventually

CONSUMER_GROUPS = ("accounting", "fraud-detection")
NAME_LABEL = "app.kubernetes.io/name"


@dataclass(frozen=True)
class PlacedOrder:
    order_id: str
    trace_id: str
    body: dict[str, Any]


def place_order(shopper: Shopper, product_id: str = "OLJCESPC7Z", quantity: int = 1) -> PlacedOrder:
    """Add `product_id` to the shopper's cart and check out, in a new trace; fails the test if refused."""
    added = shopper.add(product_id, quantity)
    assert added.status_code == 200, added.text
    traceparent, trace_id = new_traceparent()
    response = shopper.checkout(headers={"traceparent": traceparent})
    assert response.status_code == 201, response.text
    body = response.json()
    return PlacedOrder(str(body["order_id"]), trace_id, body)


def publishes(telemetry: JaegerQuery, order: PlacedOrder) -> int:
    """How many times checkout published `order` to Kafka (its producer spans in the order's trace)."""
    # checkout's server span ends after every publish of the order: once it is in, so are they
    telemetry.wait_for_spans(trace_id=order.trace_id, service="checkout", kind="SERVER", timeout=30)
    spans = telemetry.trace(order.trace_id)
    return len([s for s in spans if s.service == "checkout" and s.kind == "PRODUCER"])


def processing_spans(spans: list[Span], service: str, order_id: str) -> list[Span]:
    """The consumer spans of `service` that processed `order_id`."""
    return [
        s
        for s in spans
        if s.service == service and s.kind == "CONSUMER" and s.attributes.get("app.order.id") == order_id
    ]


def consumer_lag(bootstrap: str, group: str, topic: str = ORDERS_TOPIC) -> dict[int, int]:
    """Per partition of `topic`, the messages `group` has not committed, from the broker's own offsets:
    the group's committed offset against the high watermark a fetch from there reports. (Tansu's
    ListOffsets answer, what `end_offsets` asks, can trail the partition's true end.)"""

    async def measure() -> dict[int, int]:
        # A consumer that never subscribes does not join the group: it only reads the group's offsets.
        offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10)
        await offsets.start()
        await reader.start()
        try:
            await offsets.topics()  # the cluster's metadata, fresh
            numbers = sorted(offsets.partitions_for_topic(topic) or ())
            assert numbers, f"topic {topic} has no partitions"
            committed = {
                TopicPartition(topic, n): await offsets.committed(TopicPartition(topic, n)) or 0
                for n in numbers
            }
            reader.assign(list(committed))
            for tp, offset in committed.items():
                reader.seek(tp, offset)
            while any(reader.highwater(tp) is None for tp in committed):
                await reader.getmany(timeout_ms=100, max_records=1)
            return {tp.partition: (reader.highwater(tp) or 0) - offset for tp, offset in committed.items()}
        finally:
            await reader.stop()
            await offsets.stop()

    return asyncio.run(measure())


def prometheus_query(prometheus_url: str, query: str) -> list[dict[str, Any]]:
    """An instant PromQL query's result vector."""
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": query}, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def service_pods(stage: Stage, service: str) -> list[Pod]:
    """The pods of `service` that are not being deleted."""
    pods = stage.kube().list(Pod, namespace=stage.namespace, labels={NAME_LABEL: service})
    return [p for p in pods if p.metadata is not None and p.metadata.deletionTimestamp is None]


def ready(pod: Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def workload_available(stage: Stage, kind: type[Deployment] | type[StatefulSet], name: str) -> bool:
    """Whether the workload is rolled out, as the deploy's rollout wait judges it."""
    workload = stage.kube().get(kind, name, namespace=stage.namespace)
    return rollout_state(workload.to_dict())[0]


def stored_orders(stage: Stage, order_ids: list[str]) -> set[str]:
    dynamodb = stage.aws("dynamodb")
    table = stage.settings.orders_table
    found: set[str] = set()
    for start in range(0, len(order_ids), 100):
        keys = [{"order_id": {"S": order_id}} for order_id in order_ids[start : start + 100]]
        response: dict[str, Any] = dynamodb.batch_get_item(
            RequestItems={table: {"Keys": keys, "ProjectionExpression": "order_id"}}
        )
        found |= {item["order_id"]["S"] for item in response["Responses"][table]}
    return found


def reviewed(stage: Stage, order_ids: list[str]) -> set[str]:
    url = stage.service_url("fraud-detection")
    with httpx.Client(base_url=url, timeout=10) as client:
        return {o for o in order_ids if client.get(f"/orders/{o}").status_code == 200}


def wait_for_no_lag(stage: Stage, group: str, timeout: float = 90) -> None:
    """Until `group` has committed every message of the topic: by the broker's offsets where the runner
    reaches Kafka, else by the consumers' own lag metric in Prometheus."""
    if stage.kafka_bootstrap is None:
        assert stage.prometheus_url, f"the {stage.name} stage reaches neither Kafka nor Prometheus"
        query = f'max(messaging_kafka_consumer_lag{{group="{group}"}})'
        eventually(
            lambda: prometheus_query(stage.prometheus_url or "", query)[0]["value"][1] == "0",
            timeout=timeout,
            what=f"consumer group {group} with no lag in Prometheus",
        )
        return
    lags: list[dict[int, int]] = []

    def caught_up() -> bool:
        lags.append(consumer_lag(stage.kafka_bootstrap or "", group))
        return not any(lags[-1].values())

    try:
        eventually(caught_up, timeout=timeout, interval=0.5, what=f"consumer group {group} with no lag")
    except AssertionError as err:
        raise AssertionError(f"{err}; its lag by partition: {lags[-1]}") from None

"""The shop's telemetry as the stage's collector received it: one trace from the request at the ALB to the
Kafka consumers' processing, spans from every service naming the pod that made them, the service graph
the architecture draws, and every service's metrics scraped."""

from __future__ import annotations

import pytest

from infra.model.services import ANYWHERE, CALLERS, SERVICE_NAMES
from sim.telemetry.client import TelemetryQuery
from tests.integration.observe import place_order, processing_spans, prometheus_query, service_pods
from tests.integration.stages import Stage
from tests.support.shopper import Shopper, new_traceparent
from tests.support.waiting import eventually

ORDER_PATH = {
    "frontend-proxy",
    "frontend",
    "checkout",
    "cart",
    "product-catalog",
    "payment",
    "accounting",
    "fraud-detection",
}
CONSUMERS = ("accounting", "fraud-detection")
#: the architecture's "talks to" column: every HTTP caller of each service, and checkout to both
#: consumers over Kafka
EXPECTED_EDGES = {
    (caller, service) for service in SERVICE_NAMES for caller in CALLERS[service] if caller != ANYWHERE
} | {("checkout", consumer) for consumer in CONSUMERS}


@pytest.fixture(scope="module")
def checkout_trace(stage: Stage, telemetry: TelemetryQuery) -> tuple[str, list]:  # type: ignore[type-arg]
    order = place_order(Shopper(stage.shop_url))
    telemetry.wait_for_trace(order.trace_id, services=ORDER_PATH, timeout=60)
    eventually(
        lambda: all(processing_spans(telemetry.trace(order.trace_id), c, order.order_id) for c in CONSUMERS),
        timeout=60,
        what="both consumers' processing in the trace",
    )
    return order.order_id, telemetry.trace(order.trace_id)


def test_one_trace_runs_from_the_alb_request_through_kafka_to_both_consumers(
    checkout_trace: tuple[str, list],  # type: ignore[type-arg]
) -> None:
    order_id, spans = checkout_trace
    by_id = {s.span_id: s for s in spans}
    [root] = [s for s in spans if s.parent_span_id not in by_id]
    assert (root.service, root.kind) == ("frontend-proxy", "SERVER")
    named = {(s.service, s.name): s for s in spans}
    publish = named["checkout", "orders send"]
    assert publish.kind == "PRODUCER"
    for consumer in CONSUMERS:
        [process] = processing_spans(spans, consumer, order_id)
        assert process.parent_span_id == publish.span_id, f"{consumer} does not continue the publish"
    assert by_id[named["checkout", "POST /checkout"].parent_span_id or ""].service == "frontend"
    assert by_id[named["payment", "POST /charges"].parent_span_id or ""].service == "checkout"


def test_every_span_names_the_pod_and_node_that_made_it(
    stage: Stage,
    checkout_trace: tuple[str, list],  # type: ignore[type-arg]
) -> None:
    _, spans = checkout_trace
    for span in spans:
        pod = span.resource.get("k8s.pod.name")
        assert str(pod).startswith(f"{span.service}-"), f"{span.service} {span.name}: pod {pod}"
        assert span.resource.get("k8s.node.name"), f"{span.service} {span.name} names no node"
        assert span.resource.get("deployment.environment") == stage.settings.stage


def test_every_service_sends_spans_named_by_route_not_by_raw_path(
    stage: Stage, telemetry: TelemetryQuery
) -> None:
    traceparent, trace_id = new_traceparent()
    page = Shopper(stage.shop_url).http.get("/product/66VCHSJNUP", headers={"traceparent": traceparent})
    assert page.status_code == 200
    spans = telemetry.wait_for_trace(
        trace_id, services={"frontend-proxy", "frontend", "product-catalog", "recommendation"}, timeout=60
    )
    servers = {(s.service, s.name) for s in spans if s.kind == "SERVER"}
    assert ("product-catalog", "GET /products/<product_id>") in servers
    assert ("frontend", "GET /product/<product_id>") in servers
    assert "66VCHSJNUP" not in " ".join(name for _, name in servers)
    assert set(SERVICE_NAMES) <= set(telemetry.services())


def test_the_service_graph_has_exactly_the_edges_of_the_architecture(
    stage: Stage,
    telemetry: TelemetryQuery,
    checkout_trace: tuple[str, list],  # type: ignore[type-arg]
) -> None:
    Shopper(stage.shop_url).http.get("/product/OLJCESPC7Z")

    def edges() -> set[tuple[str, str]]:
        found = {(e.client, e.server) for e in telemetry.service_graph()}
        return {(c, s) for c, s in found if c in SERVICE_NAMES and s in SERVICE_NAMES}

    eventually(lambda: edges() >= EXPECTED_EDGES, timeout=60, what=f"edges {sorted(EXPECTED_EDGES)}")
    assert edges() == EXPECTED_EDGES


def test_every_service_s_metrics_are_collected_from_every_pod(stage: Stage) -> None:
    """Prometheus scrapes each pod where the stage runs it; without it, the collector has each service's."""
    shopper = Shopper(stage.shop_url)
    assert shopper.http.get("/product/OLJCESPC7Z").status_code == 200  # work for every service to count
    place_order(shopper)
    if stage.prometheus_url is None:
        telemetry = stage.telemetry
        if telemetry is None:
            pytest.skip(f"the {stage.name} stage has neither Prometheus nor a telemetry query")
        for service in SERVICE_NAMES:
            eventually(
                lambda s=service: telemetry.metrics(service=s),
                timeout=90,
                what=f"metrics exported by {service}",
            )
        return
    for service in SERVICE_NAMES:
        pods = {p.metadata.name for p in service_pods(stage, service) if p.metadata}

        def scraped(s: str = service) -> set[str]:
            result = prometheus_query(stage.prometheus_url or "", f'up{{service="{s}"}} == 1')
            return {r["metric"]["pod"] for r in result}

        eventually(lambda p=pods, s=service: p <= scraped(s), timeout=90, what=f"{service}'s pods {pods} up")
        if service not in CONSUMERS:  # the consumers serve no request but their probes, which are not counted
            requests = f'http_server_duration_milliseconds_count{{service="{service}"}}'
            eventually(
                lambda q=requests: prometheus_query(stage.prometheus_url or "", q),
                timeout=90,
                what=f"{service}'s request metrics in Prometheus (scraped every 15 s)",
            )

"""The shop's telemetry as the stage keeps it, through the collector: one trace from the request at the
ALB to the Kafka consumers' processing, spans from every service naming the pod that made them, the
service graph the architecture draws (all read from the trace store, Jaeger's query API), every
service's metrics through the collector's Prometheus exporter and every pod scraped, and the collector's
RED metrics made from the spans.

Metrics are read from Prometheus where the stage runs it; where it does not (the local cloud without the
`prometheus` binary), from the collector's exporter itself, which is what Prometheus would scrape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra.model.services import ANYWHERE, CALLERS, SERVICE_NAMES
from tests.integration.observe import place_order, processing_spans, prometheus_query, service_pods
from tests.integration.stages import Stage
from tests.support.jaeger import JaegerQuery, Span
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
#: how long a metric may take to show: the services export every 15 s, spanmetrics flushes every 15 s,
#: Prometheus scrapes every 15 s
METRICS_SECONDS = 90


def job(stage: Stage, service: str) -> str:
    """The `job` label the collector's exporter gives a service's series: `service.namespace/service.name`
    (the services' resource names the project as their namespace)."""
    return f"{stage.settings.project}/{service}"


def collected(stage: Stage, metric: str, **labels: str) -> list[dict[str, Any]]:
    """The label sets of the series of `metric` with `labels` that came through the collector: from
    Prometheus (whose `otel-collector` job keeps the services' own `job` label), else from the
    collector's Prometheus exporter itself."""
    if stage.prometheus_url is not None:
        selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return [r["metric"] for r in prometheus_query(stage.prometheus_url, f"{metric}{{{selector}}}")]
    text = httpx.get(f"{stage.collector_metrics_url}/metrics", timeout=10).text
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


@pytest.fixture(scope="module")
def checkout_trace(stage: Stage, telemetry: JaegerQuery) -> tuple[str, list[Span]]:
    order = place_order(Shopper(stage.shop_url))
    telemetry.wait_for_trace(order.trace_id, services=ORDER_PATH, timeout=60)
    eventually(
        lambda: all(processing_spans(telemetry.trace(order.trace_id), c, order.order_id) for c in CONSUMERS),
        timeout=60,
        what="both consumers' processing in the trace",
    )
    return order.order_id, telemetry.trace(order.trace_id)


def test_one_trace_runs_from_the_alb_request_through_kafka_to_both_consumers(
    checkout_trace: tuple[str, list[Span]],
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
    stage: Stage, checkout_trace: tuple[str, list[Span]]
) -> None:
    _, spans = checkout_trace
    for span in spans:
        pod = span.resource.get("k8s.pod.name")
        assert str(pod).startswith(f"{span.service}-"), f"{span.service} {span.name}: pod {pod}"
        assert span.resource.get("k8s.node.name"), f"{span.service} {span.name} names no node"
        assert span.resource.get("deployment.environment") == stage.settings.stage


def test_every_service_sends_spans_named_by_route_not_by_raw_path(
    stage: Stage, telemetry: JaegerQuery
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
    assert "GET /products/<product_id>" in telemetry.operations("product-catalog")


def test_the_service_graph_has_exactly_the_edges_of_the_architecture(
    stage: Stage, telemetry: JaegerQuery, checkout_trace: tuple[str, list[Span]]
) -> None:
    Shopper(stage.shop_url).http.get("/product/OLJCESPC7Z")

    def edges() -> set[tuple[str, str]]:
        # Jaeger counts a span under a parent of its own service as a call too: those are not edges
        found = {(d.parent, d.child) for d in telemetry.dependencies() if d.parent != d.child}
        return {(c, s) for c, s in found if c in SERVICE_NAMES and s in SERVICE_NAMES}

    eventually(
        lambda: edges() >= EXPECTED_EDGES, timeout=60, interval=2, what=f"edges {sorted(EXPECTED_EDGES)}"
    )
    assert edges() == EXPECTED_EDGES


def test_every_service_s_metrics_are_collected_from_every_pod(stage: Stage) -> None:
    """Each service's OTLP metrics pass through the collector; Prometheus, where the stage runs it, also
    scrapes each pod."""
    shopper = Shopper(stage.shop_url)
    assert shopper.http.get("/product/OLJCESPC7Z").status_code == 200  # work for every service to count
    place_order(shopper)
    for service in SERVICE_NAMES:
        eventually(
            lambda s=service: collected(stage, "target_info", job=job(stage, s)),
            timeout=METRICS_SECONDS,
            interval=2,
            what=f"{service}'s OTLP metrics through the collector",
        )
    for service in set(SERVICE_NAMES) - set(CONSUMERS):  # consumers serve only probes, not counted
        eventually(
            lambda s=service: collected(stage, "http_server_duration_milliseconds_count", job=job(stage, s)),
            timeout=METRICS_SECONDS,
            interval=2,
            what=f"{service}'s request metrics through the collector",
        )
    if stage.prometheus_url is None:
        return
    for service in SERVICE_NAMES:
        pods = {p.metadata.name for p in service_pods(stage, service) if p.metadata}

        def scraped(s: str = service) -> set[str]:
            result = prometheus_query(stage.prometheus_url or "", f'up{{service="{s}"}} == 1')
            return {r["metric"]["pod"] for r in result}

        eventually(lambda p=pods, s=service: p <= scraped(s), timeout=90, what=f"{service}'s pods {pods} up")


def test_the_collector_turns_spans_into_red_metrics(
    stage: Stage, checkout_trace: tuple[str, list[Span]]
) -> None:
    """The spanmetrics connector: calls and a duration histogram per service, span and status."""
    server = {"service_name": "checkout", "span_name": "POST /checkout", "span_kind": "SPAN_KIND_SERVER"}
    calls = eventually(
        lambda: collected(stage, "traces_span_metrics_calls_total", **server),
        timeout=METRICS_SECONDS,
        interval=2,
        what="checkout's calls from spanmetrics",
    )
    assert {c["status_code"] for c in calls} <= {"STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"}
    assert all(c["job"] == job(stage, "checkout") for c in calls)
    buckets = collected(stage, "traces_span_metrics_duration_milliseconds_bucket", **server, le="+Inf")
    assert buckets, "no duration histogram for checkout's POST /checkout"
    assert collected(
        stage, "traces_span_metrics_calls_total", span_kind="SPAN_KIND_PRODUCER", span_name="orders send"
    )

"""The shop's telemetry, read back from the local OTLP receiver: one trace from the proxy to the
consumers, spans named by route template, and every service's metrics."""

from __future__ import annotations

import httpx
import pytest

from sim.telemetry.client import TelemetryQuery
from sim.telemetry.store import Span
from tests.support.shop import MODULES, Shop
from tests.support.shopper import Shopper, new_traceparent
from tests.support.waiting import eventually

ORDER_SERVICES = {
    "frontend-proxy",
    "frontend",
    "checkout",
    "cart",
    "product-catalog",
    "payment",
    "accounting",
    "fraud-detection",
}


@pytest.fixture(scope="module")
def whole_shop(shop: Shop) -> Shop:
    shop.ensure()
    return shop


def by_id(spans: list[Span]) -> dict[str, Span]:
    return {span.span_id: span for span in spans}


def test_one_trace_runs_from_the_proxy_through_checkout_and_kafka_to_both_consumers(
    whole_shop: Shop, telemetry: TelemetryQuery
) -> None:
    shopper = Shopper(whole_shop.url("frontend-proxy"))
    shopper.add("OLJCESPC7Z")
    traceparent, trace_id = new_traceparent()

    assert shopper.checkout(headers={"traceparent": traceparent}).status_code == 201

    spans = telemetry.wait_for_trace(trace_id, services=ORDER_SERVICES, timeout=30)
    named = {(span.service, span.name): span for span in spans}
    publish = named[("checkout", "orders send")]
    assert publish.kind == "PRODUCER"
    for consumer in ("accounting", "fraud-detection"):
        process = named[(consumer, "process orders")]
        assert process.kind == "CONSUMER"
        assert process.parent_span_id == publish.span_id, f"{consumer} does not continue the publish"
    spans_by_id = by_id(spans)
    checkout_server = named[("checkout", "POST /checkout")]
    assert spans_by_id[checkout_server.parent_span_id or ""].service == "frontend"
    charge = named[("payment", "POST /charges")]
    assert spans_by_id[charge.parent_span_id or ""].service == "checkout"


def test_server_spans_are_named_by_route_template_not_by_raw_path(
    whole_shop: Shop, telemetry: TelemetryQuery
) -> None:
    traceparent, trace_id = new_traceparent()
    response = httpx.get(
        f"{whole_shop.url('frontend-proxy')}/api/products/66VCHSJNUP", headers={"traceparent": traceparent}
    )
    assert response.status_code == 200

    spans = telemetry.wait_for_trace(trace_id, services={"frontend", "product-catalog"}, timeout=30)
    server_names = {span.service: span.name for span in spans if span.kind == "SERVER"}
    assert server_names["product-catalog"] == "GET /products/<product_id>"
    assert "66VCHSJNUP" not in " ".join(server_names.values())


def test_the_service_graph_has_the_edges_of_the_architecture(
    whole_shop: Shop, telemetry: TelemetryQuery
) -> None:
    shopper = Shopper(whole_shop.url("frontend-proxy"))
    shopper.http.get("/product/OLJCESPC7Z")
    shopper.add("OLJCESPC7Z")
    traceparent, trace_id = new_traceparent()
    shopper.checkout(headers={"traceparent": traceparent})
    telemetry.wait_for_trace(trace_id, services=ORDER_SERVICES, timeout=30)

    edges = {(edge.client, edge.server) for edge in telemetry.service_graph()}

    assert {
        ("frontend-proxy", "frontend"),
        ("frontend", "product-catalog"),
        ("frontend", "recommendation"),
        ("frontend", "cart"),
        ("frontend", "checkout"),
        ("recommendation", "product-catalog"),
        ("checkout", "cart"),
        ("checkout", "product-catalog"),
        ("checkout", "payment"),
        ("checkout", "accounting"),
        ("checkout", "fraud-detection"),
    } <= edges


def test_every_service_exports_metrics_and_serves_them_to_prometheus(
    whole_shop: Shop, telemetry: TelemetryQuery
) -> None:
    for name in MODULES:
        scraped = httpx.get(f"{whole_shop.url(name)}/metrics", timeout=10)
        assert scraped.status_code == 200
        assert "# TYPE" in scraped.text, f"{name} serves no metrics"
    for name in MODULES:
        eventually(lambda n=name: telemetry.metrics(service=n), what=f"metrics exported by {name}")

"""The telemetry receiver as a real process: the OpenTelemetry SDK's OTLP/HTTP exporters send it spans,
metrics and logs, and `TelemetryQuery` finds them again; OTLP/JSON, errors and caps over real HTTP."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sim.supervisor.process import ManagedProcess, free_port, http_ok
from sim.telemetry.client import TelemetryQuery, TelemetryQueryError, TelemetryTimeout
from sim.telemetry.store import Edge, Metric
from tests.support.shop import Shop

HOST = "127.0.0.1"
SMALL_MAX_SPANS = 5
SMALL_MAX_BODY_BYTES = 4096


def unique(name: str) -> str:
    """A service name no other test uses, since the session's receiver is shared."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def resource(service: str) -> Resource:
    return Resource.create({"service.name": service})


@contextmanager
def tracing(url: str, service: str, compression: Compression | None = None) -> Iterator[TracerProvider]:
    """A tracer provider of its own exporting to `url` in batches, as a service does."""
    provider = TracerProvider(resource=resource(service))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", compression=compression, timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
    try:
        yield provider
    finally:
        provider.shutdown()


def tracer(provider: TracerProvider) -> Tracer:
    return provider.get_tracer("tests.telemetry_receiver")


@pytest.fixture(scope="module")
def small_receiver(workdir: Path) -> Iterator[TelemetryQuery]:
    """A second receiver started with small caps, so that eviction and size limits show."""
    port = free_port(HOST)
    process = ManagedProcess(
        "telemetry-small",
        [
            sys.executable,
            "-m",
            "sim.telemetry",
            "--host",
            HOST,
            "--port",
            str(port),
            "--max-spans",
            str(SMALL_MAX_SPANS),
            "--max-body-bytes",
            str(SMALL_MAX_BODY_BYTES),
        ],
        workdir / "logs" / "telemetry-small.log",
    ).start()
    url = f"http://{HOST}:{port}"
    try:
        process.wait_ready(lambda: http_ok(f"{url}/healthz"))
        with TelemetryQuery(url) as query:
            yield query
    finally:
        process.stop()


def test_spans_exported_by_the_sdk_come_back_as_a_trace_with_their_details(telemetry: TelemetryQuery) -> None:
    service = unique("checkout")
    with tracing(telemetry.url, service, Compression.Gzip) as provider:
        with (
            tracer(provider).start_as_current_span(
                "POST /checkout", kind=SpanKind.SERVER, attributes={"http.response.status_code": 503}
            ) as root,
            tracer(provider).start_as_current_span("charge", attributes={"app.order.items": 3}) as charge,
        ):
            charge.add_event("card declined", {"app.card_type": "visa"})
            charge.set_status(Status(StatusCode.ERROR, "payment unavailable"))
        trace_id = format(root.get_span_context().trace_id, "032x")

        spans = telemetry.wait_for_spans(trace_id=trace_id, count=2)

    by_name = {s.name: s for s in spans}
    server, child = by_name["POST /checkout"], by_name["charge"]
    assert (server.kind, server.service, server.parent_span_id) == ("SERVER", service, None)
    assert server.attributes == {"http.response.status_code": 503}
    assert child.parent_span_id == server.span_id
    assert (child.kind, child.status.code, child.status.message) == (
        "INTERNAL",
        "ERROR",
        "payment unavailable",
    )
    assert [(e.name, e.attributes) for e in child.events] == [("card declined", {"app.card_type": "visa"})]
    assert child.scope == "tests.telemetry_receiver"
    assert server.duration_ns >= child.duration_ns > 0


def test_spans_can_be_found_by_service_kind_name_and_attribute(telemetry: TelemetryQuery) -> None:
    service = unique("cart")
    with tracing(telemetry.url, service) as provider:
        for status in (200, 200, 503):
            with tracer(provider).start_as_current_span(
                "GET /carts/<user_id>", kind=SpanKind.SERVER, attributes={"http.response.status_code": status}
            ):
                pass
        with tracer(provider).start_as_current_span("dynamodb.GetItem", kind=SpanKind.CLIENT):
            pass
        telemetry.wait_for_spans(service=service, count=4)

    assert len(telemetry.spans(service=service, kind="SERVER")) == 3
    assert len(telemetry.spans(service=service, attributes={"http.response.status_code": 200})) == 2
    [failed] = telemetry.spans(service=service, attributes={"http.response.status_code": "503"})
    assert failed.attributes["http.response.status_code"] == 503
    assert [s.kind for s in telemetry.spans(service=service, name="dynamodb.GetItem")] == ["CLIENT"]
    assert len(telemetry.spans(service=service, limit=2)) == 2
    assert service in telemetry.services()


def test_the_service_graph_shows_calls_and_messages_between_services(telemetry: TelemetryQuery) -> None:
    frontend, checkout, accounting = unique("frontend"), unique("checkout"), unique("accounting")
    propagator = TraceContextTextMapPropagator()
    with (
        tracing(telemetry.url, frontend) as frontend_traces,
        tracing(telemetry.url, checkout) as checkout_traces,
        tracing(telemetry.url, accounting) as accounting_traces,
    ):
        with tracer(frontend_traces).start_as_current_span("POST", kind=SpanKind.CLIENT) as call:
            request_headers: dict[str, str] = {}
            propagator.inject(request_headers)
        with (
            tracer(checkout_traces).start_as_current_span(
                "POST /checkout", context=propagator.extract(request_headers), kind=SpanKind.SERVER
            ),
            tracer(checkout_traces).start_as_current_span("orders publish", kind=SpanKind.PRODUCER),
        ):
            message_headers: dict[str, str] = {}
            propagator.inject(message_headers)
        with tracer(accounting_traces).start_as_current_span(
            "orders process", context=propagator.extract(message_headers), kind=SpanKind.CONSUMER
        ):
            pass
        trace_id = format(call.get_span_context().trace_id, "032x")
        telemetry.wait_for_trace(trace_id, services=[frontend, checkout, accounting])

    ours = {frontend, checkout, accounting}
    edges = [e for e in telemetry.service_graph() if e.client in ours or e.server in ours]
    assert sorted(edges, key=lambda e: e.client) == sorted(
        [Edge(frontend, checkout, calls=1), Edge(checkout, accounting, calls=1)], key=lambda e: e.client
    )


def values_by(metric: Metric, key: str) -> dict[Any, Any]:
    return {p.attributes.get(key): p.value for p in metric.points}


def test_metrics_exported_by_the_sdk_report_their_latest_values(telemetry: TelemetryQuery) -> None:
    service = unique("accounting")
    exporter = OTLPMetricExporter(endpoint=f"{telemetry.url}/v1/metrics", timeout=5)
    provider = MeterProvider(
        resource=resource(service),
        metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=200)],
    )
    try:
        meter = provider.get_meter("tests.telemetry_receiver")
        orders = meter.create_counter("app.accounting.orders", unit="{order}", description="orders seen")
        duration = meter.create_histogram(
            "app.checkout.duration", unit="ms", explicit_bucket_boundaries_advisory=[10, 100]
        )
        depth = meter.create_gauge("app.queue.depth")
        orders.add(3, {"result": "written"})
        orders.add(1, {"result": "duplicate"})
        for milliseconds in (5, 50, 500):
            duration.record(milliseconds)
        depth.set(12)
        orders.add(4, {"result": "written"})

        counter = telemetry.wait_for_metric(
            service,
            "app.accounting.orders",
            lambda m: values_by(m, "result") == {"written": 7, "duplicate": 1},
        )
        histogram = telemetry.wait_for_metric(service, "app.checkout.duration")
        gauge = telemetry.wait_for_metric(service, "app.queue.depth")
    finally:
        provider.shutdown()

    assert (counter.type, counter.monotonic, counter.temporality) == ("sum", True, "CUMULATIVE")
    assert (counter.unit, counter.description) == ("{order}", "orders seen")
    [point] = histogram.points
    assert (histogram.type, point.count, point.sum, point.min, point.max) == ("histogram", 3, 555, 5, 500)
    assert (point.explicit_bounds, point.bucket_counts) == ((10, 100), (1, 1, 1))
    assert (gauge.type, gauge.points[0].value) == ("gauge", 12)
    assert {m.name for m in telemetry.metrics(service=service)} == {
        "app.accounting.orders",
        "app.checkout.duration",
        "app.queue.depth",
    }


def test_logs_exported_by_the_sdk_carry_the_trace_they_were_written_in(telemetry: TelemetryQuery) -> None:
    service = unique("payment")
    provider = LoggerProvider(resource=resource(service))
    exporter = OTLPLogExporter(endpoint=f"{telemetry.url}/v1/logs", timeout=5)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=100))
    logs = provider.get_logger("tests.telemetry_receiver")
    try:
        with tracing(telemetry.url, service) as traces:
            with tracer(traces).start_as_current_span("POST /charges") as span:
                logs.emit(
                    severity_number=SeverityNumber.WARN,
                    severity_text="WARN",
                    body="card declined",
                    attributes={"app.card_type": "visa"},
                    event_name="payment.declined",
                )
            logs.emit(severity_number=SeverityNumber.INFO, body={"event": "no trace here"})
            records = telemetry.wait_for_logs(service=service, count=2)
    finally:
        provider.shutdown()

    context = span.get_span_context()
    declined, untraced = records
    assert (declined.body, declined.severity_number, declined.severity_text) == ("card declined", 13, "WARN")
    assert (declined.attributes, declined.event_name) == ({"app.card_type": "visa"}, "payment.declined")
    assert (declined.trace_id, declined.span_id) == (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
    )
    assert (untraced.body, untraced.trace_id, untraced.scope) == (
        {"event": "no trace here"},
        None,
        "tests.telemetry_receiver",
    )
    assert telemetry.logs(trace_id=declined.trace_id) == [declined]


def test_a_shop_service_exports_its_request_spans_and_metrics_to_the_receiver(
    shop: Shop, telemetry: TelemetryQuery
) -> None:
    shop.ensure("payment")
    trace_id, caller_span_id = os.urandom(16).hex(), os.urandom(8).hex()
    card = {"number": "4432801561520454", "cvv": "672", "expiration_year": 2039, "expiration_month": 1}
    response = httpx.post(
        f"{shop.url('payment')}/charges",
        json={
            "idempotency_key": str(uuid.uuid4()),
            "amount": {"currency_code": "USD", "units": 1},
            "credit_card": card,
        },
        headers={"traceparent": f"00-{trace_id}-{caller_span_id}-01"},
        timeout=10,
    )
    assert response.status_code == 201

    spans = telemetry.wait_for_trace(trace_id, services=["payment"])
    [server] = [s for s in spans if s.kind == "SERVER"]
    assert (server.name, server.parent_span_id, server.service) == (
        "POST /charges",
        caller_span_id,
        "payment",
    )
    duration = telemetry.wait_for_metric(
        "payment", "http.server.duration", lambda m: any(p.count for p in m.points)
    )
    assert duration.type == "histogram"


def test_an_otlp_json_export_with_hex_ids_and_gzip_is_stored_as_sent(telemetry: TelemetryQuery) -> None:
    browser, frontend = unique("browser"), unique("frontend")
    trace_id, client_id, server_id = os.urandom(16).hex(), os.urandom(8).hex(), os.urandom(8).hex()

    def resource_spans(service: str, span: dict[str, Any]) -> dict[str, Any]:
        return {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"scope": {"name": "document-load"}, "spans": [span]}],
        }

    document = {
        "resourceSpans": [
            resource_spans(
                browser,
                {
                    "traceId": trace_id,
                    "spanId": client_id,
                    "name": "HTTP GET",
                    "kind": 3,
                    "startTimeUnixNano": "1700000000000000000",
                    "endTimeUnixNano": "1700000000500000000",
                    "attributes": [{"key": "http.response.status_code", "value": {"intValue": "200"}}],
                },
            ),
            resource_spans(
                frontend,
                {
                    "traceId": trace_id,
                    "spanId": server_id,
                    "parentSpanId": client_id,
                    "name": "GET /api/products",
                    "kind": "SPAN_KIND_SERVER",
                    "startTimeUnixNano": 1700000000100000000,
                    "endTimeUnixNano": 1700000000400000000,
                    "status": {"code": 1},
                },
            ),
        ]
    }
    response = httpx.post(
        f"{telemetry.url}/v1/traces",
        content=gzip.compress(json.dumps(document).encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    client, server = telemetry.trace(trace_id)
    assert (client.span_id, client.kind, client.service) == (client_id, "CLIENT", browser)
    assert client.attributes == {"http.response.status_code": 200}
    assert (server.span_id, server.parent_span_id, server.kind) == (server_id, client_id, "SERVER")
    assert (server.status.code, server.duration_ns) == ("OK", 300_000_000)
    assert Edge(browser, frontend, calls=1) in telemetry.service_graph()


def test_an_export_with_invalid_span_ids_is_a_partial_success(telemetry: TelemetryQuery) -> None:
    service = unique("frontend")
    good = {"traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(), "name": "ok"}
    bad = {"traceId": "00" * 16, "spanId": os.urandom(8).hex(), "name": "zero trace id"}
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"spans": [good, bad]}],
            }
        ]
    }
    response = httpx.post(f"{telemetry.url}/v1/traces", json=document)

    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1
    assert "trace ids must be 16" in partial["errorMessage"]
    assert [s.name for s in telemetry.spans(service=service)] == ["ok"]


def test_a_malformed_protobuf_export_is_a_400_status_saying_why(telemetry: TelemetryQuery) -> None:
    response = httpx.post(
        f"{telemetry.url}/v1/metrics",
        content=b"\xff\xff\xff",
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/x-protobuf"
    status = status_pb2.Status.FromString(response.content)
    assert "malformed protobuf ExportMetricsServiceRequest" in status.message


def test_a_malformed_json_export_is_a_400_status_saying_why(telemetry: TelemetryQuery) -> None:
    response = httpx.post(
        f"{telemetry.url}/v1/logs",
        content=b'{"resourceLogs": 7}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "malformed JSON ExportLogsServiceRequest" in response.json()["message"]


def test_an_unsupported_content_type_is_a_415(telemetry: TelemetryQuery) -> None:
    response = httpx.post(f"{telemetry.url}/v1/traces", content=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "application/x-protobuf or application/json" in response.json()["message"]


def test_an_unknown_trace_is_a_404_and_an_empty_trace_in_the_client(telemetry: TelemetryQuery) -> None:
    missing = os.urandom(16).hex()
    response = httpx.get(f"{telemetry.url}/api/traces/{missing}")
    assert response.status_code == 404
    assert missing in response.json()["error"]
    assert telemetry.trace(missing) == []


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/spans?kind=SIDEWAYS", "kind"),
        ("/api/spans?limit=0", "limit"),
        ("/api/spans?limit=lots", "limit"),
        ("/api/spans?trace_id=xyz", "trace_id"),
        ("/api/spans?servce=cart", "servce"),
        ("/api/spans?service=", "service"),
        ("/api/spans?attr.=1", "attr."),
        ("/api/logs?trace_id=123", "trace_id"),
        ("/api/metrics?limit=5", "limit"),
        ("/api/traces/not-a-trace-id", "trace_id"),
    ],
)
def test_a_bad_query_parameter_is_a_400_naming_it(
    telemetry: TelemetryQuery, path: str, parameter: str
) -> None:
    response = httpx.get(f"{telemetry.url}{path}")
    assert response.status_code == 400
    body = response.json()
    assert [f["field"] for f in body["fields"]] == [parameter]
    assert parameter in body["error"]


def test_the_client_raises_the_receivers_error_for_a_bad_query(telemetry: TelemetryQuery) -> None:
    with pytest.raises(TelemetryQueryError, match="kind"):
        telemetry.spans(kind="SIDEWAYS")


def test_waiting_for_spans_that_never_come_gives_up_after_the_timeout(telemetry: TelemetryQuery) -> None:
    with pytest.raises(TelemetryTimeout, match="0 found"):
        telemetry.wait_for_spans(service=unique("nobody"), timeout=0.3)


def test_a_receiver_with_a_small_cap_keeps_the_newest_spans_and_counts_evictions(
    small_receiver: TelemetryQuery,
) -> None:
    small_receiver.clear()
    with tracing(small_receiver.url, "shop") as provider:
        for i in range(SMALL_MAX_SPANS + 3):
            with tracer(provider).start_as_current_span(f"span-{i}"):
                pass
        assert provider.force_flush(10_000)

    assert [s.name for s in small_receiver.spans()] == [f"span-{i}" for i in range(3, SMALL_MAX_SPANS + 3)]
    spans = small_receiver.stats()["spans"]
    assert (spans.stored, spans.received, spans.evicted, spans.cap) == (5, 8, 3, SMALL_MAX_SPANS)


def test_an_export_over_the_size_cap_is_a_413(small_receiver: TelemetryQuery) -> None:
    too_big = b"\x00" * (SMALL_MAX_BODY_BYTES + 1)
    inflates_too_big = gzip.compress(too_big)
    assert len(inflates_too_big) < SMALL_MAX_BODY_BYTES
    protobuf = {"Content-Type": "application/x-protobuf"}

    plain = httpx.post(f"{small_receiver.url}/v1/traces", content=too_big, headers=protobuf)
    zipped = httpx.post(
        f"{small_receiver.url}/v1/traces",
        content=inflates_too_big,
        headers={**protobuf, "Content-Encoding": "gzip"},
    )

    assert (plain.status_code, zipped.status_code) == (413, 413)
    assert str(SMALL_MAX_BODY_BYTES) in status_pb2.Status.FromString(zipped.content).message


def test_clearing_the_receiver_forgets_all_telemetry(small_receiver: TelemetryQuery) -> None:
    with tracing(small_receiver.url, "shop") as provider:
        with tracer(provider).start_as_current_span("before clear"):
            pass
        assert provider.force_flush(10_000)
    assert small_receiver.services() == ["shop"]

    small_receiver.clear()

    assert (small_receiver.spans(), small_receiver.services(), small_receiver.service_graph()) == ([], [], [])
    assert all(s.received == s.stored == 0 for s in small_receiver.stats().values())


def test_the_receiver_refuses_a_cap_below_one() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sim.telemetry", "--max-spans", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--max-spans" in result.stderr


def test_the_receiver_stops_cleanly_on_sigterm(workdir: Path) -> None:
    port = free_port(HOST)
    process = ManagedProcess(
        "telemetry-stop",
        [sys.executable, "-m", "sim.telemetry", "--host", HOST, "--port", str(port)],
        workdir / "logs" / "telemetry-stop.log",
    ).start()
    try:
        process.wait_ready(lambda: http_ok(f"http://{HOST}:{port}/healthz"))
    finally:
        code = process.stop(grace=5)
    assert code == 0

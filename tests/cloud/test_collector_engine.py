"""The collector stand-in's parts, in process: configurations refused in one line naming what, Prometheus
names and number formatting as the pinned collector writes them, spanmetrics through the Prometheus
exporter, the debug exporter's text read back by the suite's parser, and Jaeger's storage and JSON read
back by the suite's Jaeger client."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from prometheus_client.parser import text_string_to_metric_families

from infra.model.collector import collector_config
from sim.standins.jaeger.store import MemoryStore, StorageError, TraceQuery
from sim.standins.jaeger.uimodel import trace_json
from sim.telemetry.collector import config as config_file
from sim.telemetry.collector.components import Host
from sim.telemetry.collector.config import ConfigError
from sim.telemetry.collector.contrib import CONTRIB
from sim.telemetry.collector.debugexporter import DebugExporter
from sim.telemetry.collector.prometheusexporter import Accumulator, format_float
from sim.telemetry.collector.promnames import label_name, metric_name
from sim.telemetry.collector.service import build
from sim.telemetry.collector.settings import duration, merged
from sim.telemetry.collector.spanmetrics import DEFAULTS as SPANMETRICS_DEFAULTS
from sim.telemetry.collector.spanmetrics import SpanMetrics, check
from tests.support.collector_logs import parse
from tests.support.jaeger import spans_of

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SHORT_TRACE = bytes(8) + bytes.fromhex("00000000000000ff")


def attributes(values: dict[str, Any]) -> list[KeyValue]:
    out = []
    for key, value in values.items():
        if isinstance(value, bool):
            out.append(KeyValue(key=key, value=AnyValue(bool_value=value)))
        elif isinstance(value, int):
            out.append(KeyValue(key=key, value=AnyValue(int_value=value)))
        elif isinstance(value, float):
            out.append(KeyValue(key=key, value=AnyValue(double_value=value)))
        else:
            out.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    return out


def traces(
    *spans: dict[str, Any], service: str = "checkout", pod: str = "checkout-1"
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.extend(attributes({"service.name": service, "k8s.pod.name": pod}))
    scope = resource.scope_spans.add()
    scope.scope.name, scope.scope.version = "opentelemetry.instrumentation.asgi", "0.59b0"
    for fields in spans:
        span = scope.spans.add()
        span.trace_id = fields.get("trace_id", TRACE)
        span.span_id = bytes.fromhex(fields["span_id"])
        if "parent" in fields:
            span.parent_span_id = bytes.fromhex(fields["parent"])
        span.name = fields["name"]
        span.kind = fields.get("kind", 2)
        span.start_time_unix_nano = fields.get("start", 1_700_000_000_000_000_000)
        span.end_time_unix_nano = span.start_time_unix_nano + fields.get("took", 3_000_000)
        span.attributes.extend(attributes(fields.get("attributes", {})))
        span.status.code = fields.get("status", 0)
        span.status.message = fields.get("message", "")
        for name, event_attributes in fields.get("events", []):
            event = span.events.add(name=name, time_unix_nano=span.start_time_unix_nano + 1000)
            event.attributes.extend(attributes(event_attributes))
        for link in fields.get("links", []):
            span.links.add(trace_id=TRACE, span_id=bytes.fromhex(link))
    return request


# -- configurations refused in one line


def refusal(document: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        build(config_file.parse(document, {"PORT": "4318"}), CONTRIB, Host("127.0.0.1"))
    message = str(caught.value)
    assert "\n" not in message
    return message


def with_changes(**sections: Any) -> dict[str, Any]:
    document = collector_config()
    for section, value in sections.items():
        document[section] = {**document[section], **value}
    return document


def test_a_component_the_stand_in_does_not_implement_is_refused_naming_it() -> None:
    document = with_changes(processors={"filter/health": {"traces": {"span": []}}})
    message = refusal(document)
    assert "processors::filter/health" in message
    assert "'filter' processor is not implemented" in message


def test_an_option_the_stand_in_does_not_implement_is_refused_naming_it() -> None:
    document = with_changes(
        exporters={"prometheus": {"endpoint": "0.0.0.0:8889", "enable_open_metrics": True}}
    )
    assert "enable_open_metrics" in refusal(document)
    document = with_changes(processors={"batch": {"send_batch_max_size": 100}})
    assert "send_batch_max_size" in refusal(document)


def test_pipelines_must_name_configured_components_and_connectors_both_ends() -> None:
    document = collector_config()
    document["service"]["pipelines"]["logs"]["exporters"] = ["otlphttp/missing"]
    assert "references exporter 'otlphttp/missing'" in refusal(document)
    document = collector_config()
    document["service"]["pipelines"]["metrics"]["receivers"] = ["otlp"]
    assert "connectors::spanmetrics" in refusal(document)


def test_a_pod_loopback_endpoint_is_refused_and_env_references_expand() -> None:
    document = with_changes(receivers={"otlp": {"protocols": {"http": {"endpoint": "localhost:4318"}}}})
    assert "localhost" in refusal(document)
    document = with_changes(receivers={"otlp": {"protocols": {"http": {"endpoint": "0.0.0.0:${env:PORT}"}}}})
    service = build(config_file.parse(document, {"PORT": "14318"}), CONTRIB, Host("127.0.0.7"))
    (receiver,) = service.receivers
    assert receiver.http.address == ("127.0.0.7", 14318)  # type: ignore[attr-defined]


def test_durations_read_as_go_reads_them() -> None:
    assert duration("x", "1m30s") == 90
    assert duration("x", "200ms") == pytest.approx(0.2)
    with pytest.raises(ConfigError):
        duration("x", "5 seconds")


# -- the Prometheus exporter's names, labels and numbers


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("traces.span.metrics.calls", "", "counter", "traces_span_metrics_calls_total"),
        ("traces.span.metrics.duration", "ms", "histogram", "traces_span_metrics_duration_milliseconds"),
        ("http.server.duration", "ms", "histogram", "http_server_duration_milliseconds"),
        ("http.server.active_requests", "{request}", "gauge", "http_server_active_requests"),
        ("process.runtime.cpython.memory", "By", "gauge", "process_runtime_cpython_memory_bytes"),
        ("system.network.io", "By/s", "counter", "system_network_io_bytes_per_second_total"),
        ("app.cache.hit_ratio", "1", "gauge", "app_cache_hit_ratio"),
        ("orders_total", "", "counter", "orders_total"),
    ],
)
def test_metric_names_are_the_translator_s(name: str, unit: str, kind: str, expected: str) -> None:
    assert metric_name(name, unit, monotonic_sum=kind == "counter", gauge=kind == "gauge") == expected


def test_label_names_and_numbers_are_written_as_the_collector_writes_them() -> None:
    assert [label_name(n) for n in ("k8s.pod.name", "_private", "9lives")] == [
        "k8s_pod_name",
        "key_private",
        "key_9lives",
    ]
    assert [format_float(v) for v in (1.0, 0.5, 1e6, 1234567.0, 15000.0, 1.5e-7)] == [
        "1",
        "0.5",
        "1e+06",
        "1.234567e+06",
        "15000",
        "1.5e-07",
    ]


def test_spanmetrics_give_red_series_named_and_labelled_as_the_collector_does() -> None:
    connector = SpanMetrics(
        config_file.ComponentId("spanmetrics"),
        settings(collector_config()["connectors"]["spanmetrics"]),
        None,  # type: ignore[arg-type]
    )
    server = {"span_id": "00f067aa0ba902b7", "name": "POST /checkout", "took": 30_000_000}
    failed = {"span_id": "00f067aa0ba902b8", "name": "orders send", "kind": 4, "status": 2, "took": 1_000_000}
    asyncio.run(connector.consume("traces", traces(server, dict(server, span_id="00f067aa0ba902b9"), failed)))
    accumulator = Accumulator("", resource_labels=True, const_labels={})
    accumulator.add(connector.build())
    families = {f.name: f for f in text_string_to_metric_families(accumulator.exposition())}
    calls = {tuple(sorted(s.labels.items())): s.value for s in families["traces_span_metrics_calls"].samples}
    expected = {
        "service_name": "checkout",
        "span_name": "POST /checkout",
        "span_kind": "SPAN_KIND_SERVER",
        "status_code": "STATUS_CODE_UNSET",
        "job": "checkout",
        "k8s_pod_name": "checkout-1",
    }
    assert calls[tuple(sorted(expected.items()))] == 2
    histogram = families["traces_span_metrics_duration_milliseconds"]
    buckets = {
        s.labels["le"]: s.value
        for s in histogram.samples
        if s.name.endswith("_bucket") and s.labels["span_name"] == "POST /checkout"
    }
    assert (buckets["10"], buckets["50"], buckets["+Inf"]) == (0, 2, 2)
    producer = [
        s
        for s in families["traces_span_metrics_calls"].samples
        if s.labels["span_kind"] == "SPAN_KIND_PRODUCER"
    ]
    assert producer[0].labels["status_code"] == "STATUS_CODE_ERROR"
    assert "target_info" in families


def settings(given: dict[str, Any]) -> dict[str, Any]:
    merged_settings = merged("connectors::spanmetrics", given, SPANMETRICS_DEFAULTS)
    check("connectors::spanmetrics", merged_settings)
    return merged_settings


# -- the debug exporter's text, read back


def test_the_debug_exporter_s_detailed_logs_read_back_with_multiline_bodies_and_several_resources() -> None:
    request = ExportLogsServiceRequest()
    for service, body in (
        ("cart", "failing on purpose (failedReadinessProbe)\nsecond line"),
        ("checkout", "ok"),
    ):
        resource = request.resource_logs.add()
        resource.resource.attributes.extend(attributes({"service.name": service}))
        record = resource.scope_logs.add().log_records.add()
        record.body.string_value = body
        record.severity_text, record.severity_number = "WARN", 13
        record.trace_id, record.span_id = TRACE, bytes.fromhex("00f067aa0ba902b7")
        record.attributes.extend(attributes({"code.lineno": 7}))
    out = io.StringIO()
    exporter = DebugExporter(
        config_file.ComponentId("debug"),
        {"verbosity": "detailed", "sampling_initial": 2, "sampling_thereafter": 1},
        out,
    )
    asyncio.run(exporter.consume("logs", request))
    text = "2026-01-01T00:00:00.000Z\tinfo\tservice@v0.102.0/service.go:1\tsomething else\n" + out.getvalue()
    cart, checkout = parse(text)
    assert (cart.service, cart.body) == ("cart", "failing on purpose (failedReadinessProbe)\nsecond line")
    assert (cart.severity_text, cart.severity_number, cart.trace_id) == ("WARN", 13, TRACE.hex())
    assert cart.attributes == {"code.lineno": "7"}
    assert (checkout.service, checkout.body) == ("checkout", "ok")
    assert out.getvalue().startswith(tuple("0123456789"))
    assert "\tinfo\tLogsExporter\t{" in out.getvalue()


# -- Jaeger's storage and JSON, read back by the suite's client


def stored(*requests: ExportTraceServiceRequest, max_traces: int = 10) -> MemoryStore:
    store = MemoryStore(max_traces)
    for request in requests:
        store.write(request.resource_spans)
    return store


def test_a_trace_reads_back_with_its_resource_parentage_status_events_links_and_typed_attributes() -> None:
    root = {"span_id": "00f067aa0ba902b7", "name": "POST /checkout", "attributes": {"http.status_code": 201}}
    child = {
        "span_id": "00f067aa0ba902b8",
        "parent": "00f067aa0ba902b7",
        "name": "orders send",
        "kind": 4,
        "status": 2,
        "message": "broker down",
        "attributes": {"app.order.id": "o-1", "app.leaking": False, "app.ratio": 0.5},
        "events": [("exception", {"message": "productCatalogFailure"})],
        "links": ["00f067aa0ba902b9"],
    }
    store = stored(traces(root, child))
    document = trace_json(store.trace(TRACE))  # type: ignore[arg-type]
    assert set(document) == {"traceID", "spans", "processes", "warnings"}
    spans = {s.name: s for s in spans_of(document)}
    published = spans["orders send"]
    assert published.parent_span_id == "00f067aa0ba902b7"
    assert published.trace_id == TRACE.hex()
    assert (published.kind, published.status.code, published.status.message) == (
        "PRODUCER",
        "ERROR",
        "broker down",
    )
    assert published.attributes == {"app.order.id": "o-1", "app.leaking": False, "app.ratio": 0.5}
    assert [(e.name, e.attributes) for e in published.events] == [
        ("exception", {"message": "productCatalogFailure"})
    ]
    assert [link.span_id for link in published.links] == ["00f067aa0ba902b9"]
    assert published.resource == {"service.name": "checkout", "k8s.pod.name": "checkout-1"}
    assert published.scope == "opentelemetry.instrumentation.asgi"
    assert spans["POST /checkout"].attributes == {"http.status_code": 201}
    assert spans["POST /checkout"].kind == "SERVER"


def test_a_trace_id_with_a_zero_high_half_is_written_short_and_read_back_whole() -> None:
    store = stored(traces({"span_id": "00f067aa0ba902b7", "name": "GET /", "trace_id": SHORT_TRACE}))
    document = trace_json(store.trace(SHORT_TRACE))  # type: ignore[arg-type]
    assert document["traceID"] == "00000000000000ff"
    assert spans_of(document)[0].trace_id == SHORT_TRACE.hex()


def test_search_matches_any_span_of_a_trace_by_service_operation_and_tags() -> None:
    other = bytes.fromhex("1af7651916cd43dd8448eb211c80319c")
    store = stored(
        traces(
            {"span_id": "00f067aa0ba902b7", "name": "POST /checkout", "attributes": {"http.status_code": 201}}
        ),
        traces(
            {"span_id": "00f067aa0ba902c1", "name": "POST /charges", "status": 2, "trace_id": other},
            service="payment",
        ),
    )
    assert [
        s.trace_id
        for s in store.find(TraceQuery(service="checkout", tags={"http.status_code": "201"}, depth=5))
    ] == [TRACE]
    assert store.find(TraceQuery(service="checkout", tags={"http.status_code": "500"}, depth=5)) == []
    assert [
        s.trace_id for s in store.find(TraceQuery(service="payment", tags={"error": "true"}, depth=5))
    ] == [other]
    assert store.find(TraceQuery(service="payment", operation="GET /", depth=5)) == []
    with pytest.raises(StorageError, match="search depth"):
        store.find(TraceQuery(service="payment", depth=11))


def test_the_oldest_trace_is_evicted_whole_and_late_spans_join_their_trace() -> None:
    ids = [bytes([i + 1]) * 16 for i in range(3)]
    store = stored(
        *(traces({"span_id": "00f067aa0ba902b7", "name": "x", "trace_id": i}) for i in ids), max_traces=2
    )
    assert store.trace(ids[0]) is None
    assert store.trace(ids[2]) is not None
    store.write(traces({"span_id": "00f067aa0ba902b8", "name": "late", "trace_id": ids[1]}).resource_spans)
    assert {s.name for _, _, s in store.trace(ids[1]).spans()} == {"x", "late"}  # type: ignore[union-attr]


def test_dependencies_count_calls_from_the_parent_s_service_to_the_child_s() -> None:
    store = stored(
        traces({"span_id": "00f067aa0ba902b7", "name": "POST /checkout"}),
        traces(
            {"span_id": "00f067aa0ba902c1", "parent": "00f067aa0ba902b7", "name": "POST /charges"},
            service="payment",
        ),
    )
    calls = store.dependencies(0, 0)
    assert calls == {("checkout", "payment"): 1}

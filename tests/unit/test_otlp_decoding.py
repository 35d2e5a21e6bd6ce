"""The receiver's wire format: OTLP protobuf and OTLP/JSON export requests into the store's records."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from sim.telemetry import otlp
from sim.telemetry.otlp import OtlpError

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"
PARENT_ID = "eee19b7ec3c1b173"
LINKED_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
T0 = 1_700_000_000_000_000_000


def kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def resource(service: str | None) -> Resource:
    return Resource(attributes=[kv("service.name", AnyValue(string_value=service))] if service else [])


def trace_request(*spans: trace_pb2.Span, service: str | None = "checkout") -> bytes:
    request = ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource(service),
                scope_spans=[trace_pb2.ScopeSpans(scope={"name": "manual"}, spans=spans)],
            )
        ]
    )
    return request.SerializeToString()


def proto_span(**overrides: Any) -> trace_pb2.Span:
    fields: dict[str, Any] = {
        "trace_id": bytes.fromhex(TRACE_ID),
        "span_id": bytes.fromhex(SPAN_ID),
        "name": "POST /checkout",
        "kind": trace_pb2.Span.SPAN_KIND_SERVER,
        "start_time_unix_nano": T0,
        "end_time_unix_nano": T0 + 5_000_000,
    }
    fields.update(overrides)
    return trace_pb2.Span(**fields)


def json_span(**overrides: Any) -> dict[str, Any]:
    return {
        "traceId": TRACE_ID.upper(),
        "spanId": SPAN_ID,
        "parentSpanId": PARENT_ID,
        "name": "GET /products",
        "kind": 3,
        "startTimeUnixNano": str(T0),
        "endTimeUnixNano": str(T0 + 1000),
        **overrides,
    }


def json_traces(*spans: dict[str, Any]) -> bytes:
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "frontend"}}]},
                "scopeSpans": [{"scope": {"name": "browser"}, "spans": list(spans)}],
            }
        ]
    }
    return json.dumps(document).encode()


def metrics_request(*metrics: metrics_pb2.Metric) -> bytes:
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=resource("accounting"),
                scope_metrics=[metrics_pb2.ScopeMetrics(scope={"name": "app"}, metrics=metrics)],
            )
        ]
    )
    return request.SerializeToString()


def test_a_protobuf_span_comes_out_with_hex_ids_kind_names_and_plain_attributes() -> None:
    attributes = [
        kv("http.route", AnyValue(string_value="/checkout")),
        kv("http.response.status_code", AnyValue(int_value=201)),
        kv("app.total", AnyValue(double_value=12.5)),
        kv("app.retried", AnyValue(bool_value=False)),
        kv(
            "app.ids", AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(int_value=2)]))
        ),
        kv(
            "app.card",
            AnyValue(kvlist_value=KeyValueList(values=[kv("type", AnyValue(string_value="visa"))])),
        ),
        kv("app.raw", AnyValue(bytes_value=b"\x00\x01")),
    ]
    span = proto_span(
        parent_span_id=bytes.fromhex(PARENT_ID),
        attributes=attributes,
        status={"code": trace_pb2.Status.STATUS_CODE_ERROR, "message": "card declined"},
        events=[
            {
                "name": "exception",
                "time_unix_nano": T0 + 1,
                "attributes": [kv("k", AnyValue(string_value="v"))],
            }
        ],
        links=[{"trace_id": bytes.fromhex(LINKED_TRACE_ID), "span_id": bytes.fromhex(SPAN_ID)}],
    )

    decoded = otlp.decode_traces(trace_request(span), "protobuf")

    assert decoded.rejected == 0
    [got] = decoded.records
    assert (got.trace_id, got.span_id, got.parent_span_id) == (TRACE_ID, SPAN_ID, PARENT_ID)
    assert (got.name, got.kind, got.service, got.scope) == ("POST /checkout", "SERVER", "checkout", "manual")
    assert (got.start_time_unix_nano, got.duration_ns) == (T0, 5_000_000)
    assert got.attributes == {
        "http.route": "/checkout",
        "http.response.status_code": 201,
        "app.total": 12.5,
        "app.retried": False,
        "app.ids": [1, 2],
        "app.card": {"type": "visa"},
        "app.raw": b"\x00\x01",
    }
    assert (got.status.code, got.status.message) == ("ERROR", "card declined")
    assert [(e.name, e.attributes) for e in got.events] == [("exception", {"k": "v"})]
    assert [(link.trace_id, link.span_id) for link in got.links] == [(LINKED_TRACE_ID, SPAN_ID)]


def test_a_root_span_has_no_parent_and_a_resource_without_a_name_is_unknown_service() -> None:
    [got] = otlp.decode_traces(trace_request(proto_span(), service=None), "protobuf").records
    assert got.parent_span_id is None
    assert got.service == "unknown_service"


def test_a_span_keeps_its_resource_so_the_replica_that_made_it_is_known() -> None:
    request = ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=Resource(
                    attributes=[
                        kv("service.name", AnyValue(string_value="cart")),
                        kv("k8s.pod.name", AnyValue(string_value="cart-7d9f-abcde")),
                    ]
                ),
                scope_spans=[trace_pb2.ScopeSpans(spans=[proto_span()])],
            )
        ]
    )
    [got] = otlp.decode_traces(request.SerializeToString(), "protobuf").records
    assert got.resource == {"service.name": "cart", "k8s.pod.name": "cart-7d9f-abcde"}


def test_otlp_json_ids_are_read_as_hex_not_base64() -> None:
    link = {"traceId": LINKED_TRACE_ID, "spanId": SPAN_ID}
    [got] = otlp.decode_traces(json_traces(json_span(links=[link])), "json").records
    assert (got.trace_id, got.span_id, got.parent_span_id) == (TRACE_ID, SPAN_ID, PARENT_ID)
    assert [(x.trace_id, x.span_id) for x in got.links] == [(LINKED_TRACE_ID, SPAN_ID)]
    assert (got.service, got.scope, got.end_time_unix_nano) == ("frontend", "browser", T0 + 1000)


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        (3, 2, ("CLIENT", "ERROR")),
        ("SPAN_KIND_PRODUCER", "STATUS_CODE_OK", ("PRODUCER", "OK")),
        (0, 0, ("INTERNAL", "UNSET")),
    ],
    ids=["ints", "names", "unspecified"],
)
def test_otlp_json_enums_may_be_ints_or_names(kind: Any, status: Any, expected: tuple[str, str]) -> None:
    [got] = otlp.decode_traces(json_traces(json_span(kind=kind, status={"code": status})), "json").records
    assert (got.kind, got.status.code) == expected


def test_otlp_json_attribute_values_of_every_type_are_plain_python() -> None:
    attributes = [
        {"key": "s", "value": {"stringValue": "x"}},
        {"key": "i", "value": {"intValue": "42"}},
        {"key": "d", "value": {"doubleValue": 0.5}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "y"}]}}},
        {"key": "m", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": 1}}]}}},
        {"key": "raw", "value": {"bytesValue": "AAE="}},
    ]
    [got] = otlp.decode_traces(json_traces(json_span(attributes=attributes)), "json").records
    assert got.attributes == {
        "s": "x",
        "i": 42,
        "d": 0.5,
        "b": True,
        "a": ["y"],
        "m": {"k": 1},
        "raw": b"\x00\x01",
    }


def test_otlp_json_fields_the_receiver_does_not_know_are_ignored() -> None:
    [got] = otlp.decode_traces(json_traces(json_span(futureField={"x": 1})), "json").records
    assert got.span_id == SPAN_ID


def test_spans_with_invalid_ids_are_rejected_and_reported_as_a_partial_success() -> None:
    bad = proto_span(trace_id=b"\x00" * 16)
    short = proto_span(span_id=b"\x01\x02")
    decoded = otlp.decode_traces(trace_request(proto_span(), bad, short), "protobuf")

    assert (len(decoded.records), decoded.rejected) == (1, 2)
    response = ExportTraceServiceResponse.FromString(
        otlp.export_response("traces", "protobuf", decoded.rejected, decoded.reason)
    )
    assert response.partial_success.rejected_spans == 2
    assert "trace ids must be 16" in response.partial_success.error_message
    as_json = json.loads(otlp.export_response("traces", "json", decoded.rejected, decoded.reason))
    assert as_json["partialSuccess"]["rejectedSpans"] in (2, "2")


def test_a_full_success_answers_an_empty_response_in_the_request_format() -> None:
    assert otlp.export_response("metrics", "protobuf") == b""
    assert json.loads(otlp.export_response("logs", "json")) == {}


@pytest.mark.parametrize(
    ("body", "fmt", "words"),
    [
        (b"\xff\xff\xff", "protobuf", "malformed protobuf ExportTraceServiceRequest"),
        (b"{not json", "json", "malformed JSON ExportTraceServiceRequest"),
        (b"[1, 2]", "json", "must be a JSON object"),
        (b'{"resourceSpans": 5}', "json", "resourceSpans"),
        (json_traces(json_span(traceId="not-hex")), "json", "traceId 'not-hex' is not a hex string"),
        (b"\xc3\x28", "json", "malformed JSON"),
    ],
    ids=["protobuf", "json-syntax", "json-array", "json-wrong-type", "json-bad-id", "json-bad-utf8"],
)
def test_a_malformed_body_is_a_400_that_says_what_is_wrong(body: bytes, fmt: Any, words: str) -> None:
    with pytest.raises(OtlpError) as raised:
        otlp.decode_traces(body, fmt)
    assert raised.value.status == 400
    assert words in raised.value.message


@pytest.mark.parametrize(
    ("content_type", "fmt"),
    [
        ("application/x-protobuf", "protobuf"),
        ("application/protobuf", "protobuf"),
        ("application/json", "json"),
        ("Application/JSON; charset=utf-8", "json"),
    ],
)
def test_the_content_type_chooses_the_format(content_type: str, fmt: str) -> None:
    assert otlp.wire_format(content_type) == fmt


@pytest.mark.parametrize("content_type", ["text/plain", "application/grpc", "", None])
def test_any_other_content_type_is_a_415(content_type: str | None) -> None:
    with pytest.raises(OtlpError) as raised:
        otlp.wire_format(content_type)
    assert raised.value.status == 415
    assert "application/x-protobuf or application/json" in raised.value.message


def test_gzip_and_deflate_bodies_are_decompressed() -> None:
    body = trace_request(proto_span())
    assert otlp.decompress(gzip.compress(body), "gzip", 1 << 20) == body
    assert otlp.decompress(zlib.compress(body), "deflate", 1 << 20) == body
    assert otlp.decompress(body, None, 1 << 20) == body
    assert otlp.decompress(gzip.compress(body[:10]) + gzip.compress(body[10:]), "gzip", 1 << 20) == body


def test_a_body_that_inflates_past_the_cap_is_a_413() -> None:
    bomb = gzip.compress(b"\x00" * 200_000)
    assert len(bomb) < 1000
    with pytest.raises(OtlpError) as raised:
        otlp.decompress(bomb, "gzip", 100_000)
    assert raised.value.status == 413


@pytest.mark.parametrize(
    ("body", "encoding", "status"),
    [
        (b"not gzip at all", "gzip", 400),
        (gzip.compress(b"x" * 1000)[:20], "gzip", 400),
        (b"anything", "br", 415),
    ],
    ids=["garbage", "truncated", "brotli"],
)
def test_a_bad_or_unsupported_content_encoding_is_refused(body: bytes, encoding: str, status: int) -> None:
    with pytest.raises(OtlpError) as raised:
        otlp.decompress(body, encoding, 1 << 20)
    assert raised.value.status == status


def test_error_bodies_are_google_rpc_status_in_the_request_format() -> None:
    status = status_pb2.Status.FromString(otlp.error_body("protobuf", 400, "bad body " * 30))
    assert (status.code, status.message) == (3, "bad body " * 30)
    assert json.loads(otlp.error_body("json", 415, "nope")) == {"code": 3, "message": "nope"}


def test_a_monotonic_sum_keeps_its_value_temporality_and_attributes() -> None:
    metric = metrics_pb2.Metric(
        name="app.accounting.orders",
        unit="{order}",
        description="orders written",
        sum=metrics_pb2.Sum(
            is_monotonic=True,
            aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE,
            data_points=[
                {
                    "as_int": 7,
                    "time_unix_nano": T0,
                    "attributes": [kv("result", AnyValue(string_value="written"))],
                },
                {
                    "as_int": 2,
                    "time_unix_nano": T0,
                    "attributes": [kv("result", AnyValue(string_value="duplicate"))],
                },
            ],
        ),
    )
    points = otlp.decode_metrics(metrics_request(metric), "protobuf").records
    assert {(p.point.attributes["result"], p.point.value) for p in points} == {
        ("written", 7),
        ("duplicate", 2),
    }
    first = points[0]
    assert (first.service, first.name, first.type, first.unit, first.scope) == (
        "accounting",
        "app.accounting.orders",
        "sum",
        "{order}",
        "app",
    )
    assert (first.monotonic, first.temporality, first.description) == (True, "CUMULATIVE", "orders written")


def test_a_gauge_keeps_a_double_value() -> None:
    metric = metrics_pb2.Metric(
        name="app.lag", gauge={"data_points": [{"as_double": 0.25, "time_unix_nano": T0}]}
    )
    [point] = otlp.decode_metrics(metrics_request(metric), "protobuf").records
    assert (point.type, point.point.value, point.point.time_unix_nano) == ("gauge", 0.25, T0)
    assert (point.monotonic, point.temporality) == (None, None)


def test_a_histogram_keeps_its_buckets_count_sum_min_and_max() -> None:
    metric = metrics_pb2.Metric(
        name="http.server.request.duration",
        unit="s",
        histogram=metrics_pb2.Histogram(
            aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_DELTA,
            data_points=[
                {
                    "count": 3,
                    "sum": 0.6,
                    "min": 0.1,
                    "max": 0.3,
                    "bucket_counts": [1, 2, 0],
                    "explicit_bounds": [0.15, 0.5],
                }
            ],
        ),
    )
    [point] = otlp.decode_metrics(metrics_request(metric), "protobuf").records
    assert (point.type, point.temporality) == ("histogram", "DELTA")
    got = point.point
    assert (got.count, got.sum, got.min, got.max) == (3, 0.6, 0.1, 0.3)
    assert (got.bucket_counts, got.explicit_bounds) == ((1, 2, 0), (0.15, 0.5))


def test_a_histogram_without_sum_min_or_max_leaves_them_unset() -> None:
    metric = metrics_pb2.Metric(name="h", histogram={"data_points": [{"count": 0}]})
    [point] = otlp.decode_metrics(metrics_request(metric), "protobuf").records
    assert (point.point.sum, point.point.min, point.point.max) == (None, None, None)


def test_exponential_histograms_and_summaries_are_kept_too() -> None:
    exponential = metrics_pb2.Metric(
        name="latency",
        exponential_histogram={
            "aggregation_temporality": metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE,
            "data_points": [
                {"count": 4, "scale": 2, "zero_count": 1, "positive": {"offset": 3, "bucket_counts": [2, 1]}}
            ],
        },
    )
    summary = metrics_pb2.Metric(
        name="gc",
        summary={
            "data_points": [{"count": 2, "sum": 3.0, "quantile_values": [{"quantile": 0.5, "value": 1.5}]}]
        },
    )
    first, second = otlp.decode_metrics(metrics_request(exponential, summary), "protobuf").records
    assert (first.type, first.point.scale, first.point.zero_count) == ("exponential_histogram", 2, 1)
    assert first.point.positive is not None
    assert (first.point.positive.offset, first.point.positive.bucket_counts) == (3, (2, 1))
    assert (second.type, second.point.count, second.point.quantiles) == ("summary", 2, ((0.5, 1.5),))


def test_otlp_json_metrics_of_each_kind_decode_like_protobuf() -> None:
    exemplar = {"asDouble": 0.2, "traceId": TRACE_ID, "spanId": SPAN_ID}
    document = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "requests",
                                "sum": {
                                    "isMonotonic": True,
                                    "aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                                    "dataPoints": [{"asInt": "5", "timeUnixNano": str(T0)}],
                                },
                            },
                            {"name": "size", "gauge": {"dataPoints": [{"asDouble": 1.5}]}},
                            {
                                "name": "duration",
                                "histogram": {
                                    "aggregationTemporality": 2,
                                    "dataPoints": [
                                        {
                                            "count": "2",
                                            "sum": 0.4,
                                            "bucketCounts": ["1", "1"],
                                            "explicitBounds": [0.3],
                                            "exemplars": [exemplar],
                                        }
                                    ],
                                },
                            },
                        ]
                    }
                ],
            }
        ]
    }
    points = otlp.decode_metrics(json.dumps(document).encode(), "json").records
    by_name = {p.name: p for p in points}
    assert (by_name["requests"].point.value, by_name["requests"].temporality) == (5, "CUMULATIVE")
    assert by_name["size"].point.value == 1.5
    duration = by_name["duration"]
    assert (duration.point.count, duration.point.bucket_counts, duration.temporality) == (
        2,
        (1, 1),
        "CUMULATIVE",
    )
    assert {p.service for p in points} == {"cart"}


def test_log_records_keep_body_severity_and_the_trace_they_belong_to() -> None:
    request = ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource("payment"),
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        log_records=[
                            {
                                "time_unix_nano": T0,
                                "severity_number": logs_pb2.SEVERITY_NUMBER_WARN,
                                "severity_text": "WARNING",
                                "body": {"string_value": "card declined"},
                                "attributes": [kv("code.function", AnyValue(string_value="charge"))],
                                "trace_id": bytes.fromhex(TRACE_ID),
                                "span_id": bytes.fromhex(SPAN_ID),
                            },
                            {
                                "body": {
                                    "kvlist_value": {"values": [kv("event", AnyValue(string_value="boot"))]}
                                }
                            },
                            {"trace_id": b"\x01\x02"},
                        ]
                    )
                ],
            )
        ]
    )
    decoded = otlp.decode_logs(request.SerializeToString(), "protobuf")
    assert decoded.rejected == 1
    first, second = decoded.records
    assert (first.service, first.body, first.severity_number, first.severity_text) == (
        "payment",
        "card declined",
        13,
        "WARNING",
    )
    assert (first.trace_id, first.span_id, first.attributes) == (
        TRACE_ID,
        SPAN_ID,
        {"code.function": "charge"},
    )
    assert (second.trace_id, second.span_id, second.body) == (None, None, {"event": "boot"})


def test_otlp_json_logs_read_their_trace_id_as_hex() -> None:
    document = {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                                "severityNumber": 17,
                                "body": {"stringValue": "x"},
                            }
                        ]
                    }
                ]
            }
        ]
    }
    [record] = otlp.decode_logs(json.dumps(document).encode(), "json").records
    assert (record.trace_id, record.span_id, record.severity_number, record.service) == (
        TRACE_ID,
        SPAN_ID,
        17,
        "unknown_service",
    )


def test_a_request_parses_whole_in_either_format_as_the_collector_stand_in_passes_it_on() -> None:
    request = otlp.parse_request("traces", json_traces(json_span()), "json")
    assert isinstance(request, ExportTraceServiceRequest)
    (span,) = request.resource_spans[0].scope_spans[0].spans
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == PARENT_ID
    again = otlp.parse_request("traces", request.SerializeToString(), "protobuf")
    assert again == request
    with pytest.raises(OtlpError) as caught:
        otlp.parse_request("metrics", b"\xff\x00", "protobuf")
    assert caught.value.status == 400

"""OTLP/HTTP's wire format: export requests in, the store's records out, and the responses back.

Bodies are protobuf (`application/x-protobuf`) or OTLP/JSON (`application/json`), optionally gzip- or
deflate-compressed. OTLP/JSON is protobuf's JSON mapping with two differences that matter: trace and span
ids are hex strings, not base64, and enums may be ints or names. The ids are turned to base64 before
protobuf's JSON parser sees them, so both formats decode through the same protobuf messages.

Records whose ids are not valid (a trace id is 16 bytes, a span id 8) are rejected and reported in the
response's `partial_success`, as the OTLP specification asks; a body that cannot be decoded at all is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from sim.telemetry.store import (
    SPAN_KINDS,
    STATUS_CODES,
    Attributes,
    Buckets,
    DataPoint,
    LogRecord,
    MetricPoint,
    Span,
    SpanEvent,
    SpanLink,
    SpanStatus,
)

R = TypeVar("R")
M = TypeVar("M", bound=Message)

WireFormat = Literal["protobuf", "json"]
Signal = Literal["traces", "metrics", "logs"]

MEDIA_TYPES: dict[WireFormat, str] = {"protobuf": "application/x-protobuf", "json": "application/json"}
_FORMATS: dict[str, WireFormat] = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
_ZLIB_WBITS = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
UNKNOWN_SERVICE = "unknown_service"
_TEMPORALITIES = {1: "DELTA", 2: "CUMULATIVE"}
_GRPC_INVALID_ARGUMENT = 3
_GRPC_INTERNAL = 13


class OtlpError(Exception):
    """A request the receiver cannot take; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Decoded(Generic[R]):
    """The records of one export request, and how many were rejected and why."""

    records: list[R]
    rejected: int = 0
    reason: str = ""


def wire_format(content_type: str | None) -> WireFormat:
    """The format a `Content-Type` names; 415 for anything else."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in _FORMATS:
        raise OtlpError(
            415, f"unsupported Content-Type {content_type!r}: use application/x-protobuf or application/json"
        )
    return _FORMATS[media_type]


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """`body` without its content coding, refusing (413) to grow past `limit` bytes."""
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in _ZLIB_WBITS:
        raise OtlpError(415, f"unsupported Content-Encoding {content_encoding!r}: use gzip, deflate or none")
    out = bytearray()
    rest = body
    while rest:  # gzip allows several members one after another
        stream = zlib.decompressobj(_ZLIB_WBITS[coding])
        try:
            out += stream.decompress(rest, limit + 1 - len(out))
        except zlib.error as err:
            raise OtlpError(400, f"body is not valid {coding}: {err}") from err
        if len(out) > limit:
            raise OtlpError(413, f"decompressed body is larger than {limit} bytes")
        if not stream.eof:
            raise OtlpError(400, f"body is not valid {coding}: truncated")
        rest = stream.unused_data
    return bytes(out)


#: the export request message of each signal
REQUEST_TYPES: dict[Signal, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


def parse_request(signal: Signal, body: bytes, fmt: WireFormat) -> Message:
    """The Export*ServiceRequest of `signal` in `body` (decompressed), as sent; 400 when malformed."""
    return _parse(body, fmt, REQUEST_TYPES[signal])


def decode_traces(body: bytes, fmt: WireFormat) -> Decoded[Span]:
    request = _parse(body, fmt, ExportTraceServiceRequest)
    spans: list[Span] = []
    rejected = 0
    for resource_spans in request.resource_spans:
        service = _service(resource_spans.resource)
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                valid_parent = not span.parent_span_id or _is_span_id(span.parent_span_id)
                if _is_trace_id(span.trace_id) and _is_span_id(span.span_id) and valid_parent:
                    spans.append(_span(span, service, scope_spans.scope.name, resource))
                else:
                    rejected += 1
    return Decoded(spans, rejected, _rejection(rejected, "spans"))


def decode_metrics(body: bytes, fmt: WireFormat) -> Decoded[MetricPoint]:
    request = _parse(body, fmt, ExportMetricsServiceRequest)
    points: list[MetricPoint] = []
    for resource_metrics in request.resource_metrics:
        service = _service(resource_metrics.resource)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points.extend(_metric_points(service, scope_metrics.scope.name, metric))
    return Decoded(points)


def decode_logs(body: bytes, fmt: WireFormat) -> Decoded[LogRecord]:
    request = _parse(body, fmt, ExportLogsServiceRequest)
    records: list[LogRecord] = []
    rejected = 0
    for resource_logs in request.resource_logs:
        service = _service(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            for log in scope_logs.log_records:
                valid_trace = not log.trace_id or _is_trace_id(log.trace_id)
                if valid_trace and (not log.span_id or _is_span_id(log.span_id)):
                    records.append(_log_record(log, service, scope_logs.scope.name))
                else:
                    rejected += 1
    return Decoded(records, rejected, _rejection(rejected, "log records"))


def export_response(signal: Signal, fmt: WireFormat, rejected: int = 0, reason: str = "") -> bytes:
    """The Export*ServiceResponse for `signal` in `fmt`, with `partial_success` when some were rejected."""
    response: Message
    if signal == "traces":
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = reason
    elif signal == "metrics":
        response = ExportMetricsServiceResponse()
        if rejected:
            response.partial_success.rejected_data_points = rejected
            response.partial_success.error_message = reason
    else:
        response = ExportLogsServiceResponse()
        if rejected:
            response.partial_success.rejected_log_records = rejected
            response.partial_success.error_message = reason
    if fmt == "protobuf":
        encoded: bytes = response.SerializeToString()
        return encoded
    return json.dumps(json_format.MessageToDict(response)).encode()


def error_body(fmt: WireFormat, http_status: int, message: str) -> bytes:
    """A `google.rpc.Status` for an error response, in `fmt`, as OTLP/HTTP prescribes.

    The message has two fields (1: code, 2: message), encoded here to avoid a dependency for it.
    """
    code = _GRPC_INVALID_ARGUMENT if http_status < 500 else _GRPC_INTERNAL
    if fmt == "json":
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def attributes(pairs: Sequence[KeyValue]) -> Attributes:
    return {pair.key: any_value(pair.value) for pair in pairs}


def any_value(value: AnyValue) -> Any:
    """An AnyValue as plain Python: str, bool, int, float, bytes, list, dict or None."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return None if which is None else getattr(value, which)


def _parse(body: bytes, fmt: WireFormat, message_type: type[M]) -> M:
    message: M = message_type()
    name = message_type.DESCRIPTOR.name
    if fmt == "protobuf":
        try:
            message.ParseFromString(body)
        except DecodeError as err:
            raise OtlpError(400, f"malformed protobuf {name}: {err}") from err
        return message
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as err:
        raise OtlpError(400, f"malformed JSON {name}: {err}") from err
    if not isinstance(document, dict):
        raise OtlpError(400, f"malformed JSON {name}: the body must be a JSON object")
    _hex_ids_to_base64(document)
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except json_format.ParseError as err:
        raise OtlpError(400, f"malformed JSON {name}: {err}") from err
    return message


# Where OTLP/JSON puts hex ids: the objects at the end of these paths hold traceId/spanId/parentSpanId.
_ID_PATHS: tuple[tuple[str, ...], ...] = (
    ("resourceSpans", "scopeSpans", "spans"),
    ("resourceSpans", "scopeSpans", "spans", "links"),
    ("resourceLogs", "scopeLogs", "logRecords"),
    *(
        ("resourceMetrics", "scopeMetrics", "metrics", data, "dataPoints", "exemplars")
        for data in ("gauge", "sum", "histogram", "exponentialHistogram")
    ),
)
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite OTLP/JSON's hex ids in place as the base64 protobuf's JSON mapping expects."""
    for path in _ID_PATHS:
        for holder in _objects_at(document, path):
            for camel in _ID_FIELDS:
                for key in (camel, _snake(camel)):
                    value = holder.get(key)
                    if isinstance(value, str):
                        if not _HEX.fullmatch(value):
                            raise OtlpError(400, f"malformed JSON: {key} {value!r} is not a hex string")
                        holder[key] = base64.b64encode(binascii.unhexlify(value)).decode()


def _objects_at(node: Any, path: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects reached from `node` by `path`, through lists, by camelCase or snake_case keys."""
    if isinstance(node, list):
        for item in node:
            yield from _objects_at(item, path)
    elif isinstance(node, dict):
        if not path:
            yield node
            return
        child = node.get(path[0], node.get(_snake(path[0])))
        if child is not None:
            yield from _objects_at(child, path[1:])


def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", camel).lower()


def _service(resource: Resource) -> str:
    for pair in resource.attributes:
        if pair.key == "service.name" and pair.value.WhichOneof("value") == "string_value":
            return pair.value.string_value or UNKNOWN_SERVICE
    return UNKNOWN_SERVICE


def _is_trace_id(value: bytes) -> bool:
    return len(value) == TRACE_ID_BYTES and any(value)


def _is_span_id(value: bytes) -> bool:
    return len(value) == SPAN_ID_BYTES and any(value)


def _rejection(rejected: int, what: str) -> str:
    if not rejected:
        return ""
    return f"{rejected} {what} rejected: trace ids must be 16 non-zero bytes and span ids 8"


def _span(span: trace_pb2.Span, service: str, scope: str, resource: Attributes) -> Span:
    kind = SPAN_KINDS[span.kind - 1] if 1 <= span.kind <= len(SPAN_KINDS) else "INTERNAL"
    code = STATUS_CODES[span.status.code] if 0 <= span.status.code < len(STATUS_CODES) else "UNSET"
    return Span(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        name=span.name,
        kind=kind,
        service=service,
        start_time_unix_nano=span.start_time_unix_nano,
        end_time_unix_nano=span.end_time_unix_nano,
        attributes=attributes(span.attributes),
        status=SpanStatus(code, span.status.message),
        events=tuple(SpanEvent(e.name, e.time_unix_nano, attributes(e.attributes)) for e in span.events),
        links=tuple(
            SpanLink(link.trace_id.hex(), link.span_id.hex(), attributes(link.attributes))
            for link in span.links
        ),
        scope=scope,
        resource=resource,
    )


def _log_record(log: logs_pb2.LogRecord, service: str, scope: str) -> LogRecord:
    return LogRecord(
        service=service,
        time_unix_nano=log.time_unix_nano,
        observed_time_unix_nano=log.observed_time_unix_nano,
        severity_number=log.severity_number,
        severity_text=log.severity_text,
        body=any_value(log.body) if log.HasField("body") else None,
        attributes=attributes(log.attributes),
        trace_id=log.trace_id.hex() or None,
        span_id=log.span_id.hex() or None,
        event_name=log.event_name,
        scope=scope,
    )


def _metric_points(service: str, scope: str, metric: metrics_pb2.Metric) -> Iterator[MetricPoint]:
    which = metric.WhichOneof("data")
    points: list[DataPoint]
    monotonic: bool | None = None
    temporality: str | None = None
    if which == "gauge":
        points = [_number_point(p) for p in metric.gauge.data_points]
    elif which == "sum":
        points = [_number_point(p) for p in metric.sum.data_points]
        monotonic = metric.sum.is_monotonic
        temporality = _TEMPORALITIES.get(metric.sum.aggregation_temporality, "UNSPECIFIED")
    elif which == "histogram":
        points = [_histogram_point(p) for p in metric.histogram.data_points]
        temporality = _TEMPORALITIES.get(metric.histogram.aggregation_temporality, "UNSPECIFIED")
    elif which == "exponential_histogram":
        points = [_exponential_point(p) for p in metric.exponential_histogram.data_points]
        temporality = _TEMPORALITIES.get(metric.exponential_histogram.aggregation_temporality, "UNSPECIFIED")
    elif which == "summary":
        points = [_summary_point(p) for p in metric.summary.data_points]
    else:
        return
    for point in points:
        yield MetricPoint(
            service=service,
            name=metric.name,
            type=which,
            point=point,
            unit=metric.unit,
            description=metric.description,
            monotonic=monotonic,
            temporality=temporality,
            scope=scope,
        )


def _number_point(point: metrics_pb2.NumberDataPoint) -> DataPoint:
    which = point.WhichOneof("value")
    return DataPoint(
        attributes=attributes(point.attributes),
        start_time_unix_nano=point.start_time_unix_nano,
        time_unix_nano=point.time_unix_nano,
        value=None if which is None else getattr(point, which),
    )


def _histogram_point(point: metrics_pb2.HistogramDataPoint) -> DataPoint:
    return DataPoint(
        attributes=attributes(point.attributes),
        start_time_unix_nano=point.start_time_unix_nano,
        time_unix_nano=point.time_unix_nano,
        count=point.count,
        sum=point.sum if point.HasField("sum") else None,
        min=point.min if point.HasField("min") else None,
        max=point.max if point.HasField("max") else None,
        bucket_counts=tuple(point.bucket_counts),
        explicit_bounds=tuple(point.explicit_bounds),
    )


def _exponential_point(point: metrics_pb2.ExponentialHistogramDataPoint) -> DataPoint:
    return DataPoint(
        attributes=attributes(point.attributes),
        start_time_unix_nano=point.start_time_unix_nano,
        time_unix_nano=point.time_unix_nano,
        count=point.count,
        sum=point.sum if point.HasField("sum") else None,
        min=point.min if point.HasField("min") else None,
        max=point.max if point.HasField("max") else None,
        scale=point.scale,
        zero_count=point.zero_count,
        positive=Buckets(point.positive.offset, tuple(point.positive.bucket_counts)),
        negative=Buckets(point.negative.offset, tuple(point.negative.bucket_counts)),
    )


def _summary_point(point: metrics_pb2.SummaryDataPoint) -> DataPoint:
    return DataPoint(
        attributes=attributes(point.attributes),
        start_time_unix_nano=point.start_time_unix_nano,
        time_unix_nano=point.time_unix_nano,
        count=point.count,
        sum=point.sum,
        quantiles=tuple((q.quantile, q.value) for q in point.quantile_values),
    )


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)

"""The text the collector's `debug` exporter writes at `detailed` verbosity (its `otlptext` marshalers,
0.102) for logs and traces: one entry per resource, scope and record, attributes as `-> key: Type(value)`,
timestamps as Go prints a UTC time. Metrics' detailed text is not implemented (the debug exporter
refuses that combination)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sim.telemetry.otlp import any_value

ATTRIBUTE_PREFIX = "     ->"
SEVERITY_NAMES = ((1, "Trace"), (5, "Debug"), (9, "Info"), (13, "Warn"), (17, "Error"), (21, "Fatal"))
#: plog.SeverityNumber's names: Info(9), Info2(10) ... Info4(12)
SEVERITIES = {0: "Unspecified"} | {
    base + offset: name if offset == 0 else f"{name}{offset + 1}"
    for base, name in SEVERITY_NAMES
    for offset in range(4)
}
SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")
VALUE_TYPES = {
    "string_value": "Str",
    "bool_value": "Bool",
    "int_value": "Int",
    "double_value": "Double",
    "array_value": "Slice",
    "kvlist_value": "Map",
    "bytes_value": "Bytes",
}


def timestamp(nanos: int) -> str:
    """A pcommon.Timestamp as Go's `time.Time.String()` prints it in UTC."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return f"{text} +0000 UTC"


def value(v: Any) -> str:
    """`Type(text)` as the marshalers print an AnyValue."""
    which = v.WhichOneof("value")
    if which is None:
        return "Empty()"
    return f"{VALUE_TYPES[which]}({as_string(v)})"


def as_string(v: Any) -> str:
    which = v.WhichOneof("value")
    plain = any_value(v)
    if which == "bool_value":
        return "true" if plain else "false"
    if which == "double_value":  # Go's FormatFloat(v, 'f', -1, 64): shortest digits, never an exponent
        return format(Decimal(repr(float(plain))).normalize(), "f")
    if which == "bytes_value":
        return base64.b64encode(plain).decode()
    if which in ("array_value", "kvlist_value"):
        return json.dumps(_jsonable(plain), separators=(",", ":"))
    return "" if plain is None else str(plain)


def _jsonable(plain: Any) -> Any:
    if isinstance(plain, bytes):
        return base64.b64encode(plain).decode()
    if isinstance(plain, list):
        return [_jsonable(p) for p in plain]
    if isinstance(plain, dict):
        return {k: _jsonable(p) for k, p in plain.items()}
    return plain


def _attributes(header: str, pairs: Any, prefix: str = ATTRIBUTE_PREFIX) -> Iterator[str]:
    if not pairs:
        return
    yield f"{header}:"
    for kv in pairs:
        yield f"{prefix} {kv.key}: {value(kv.value)}"


def _scope(scope: Any) -> Iterator[str]:
    yield f"InstrumentationScope {scope.name} {scope.version}"
    yield from _attributes("InstrumentationScope attributes", scope.attributes)


def logs(request: Any) -> str:
    lines: list[str] = []
    for i, resource_logs in enumerate(request.resource_logs):
        lines += [f"ResourceLog #{i}", f"Resource SchemaURL: {resource_logs.schema_url}"]
        lines += _attributes("Resource attributes", resource_logs.resource.attributes)
        for j, scope_logs in enumerate(resource_logs.scope_logs):
            lines += [f"ScopeLogs #{j}", f"ScopeLogs SchemaURL: {scope_logs.schema_url}"]
            lines += _scope(scope_logs.scope)
            for k, record in enumerate(scope_logs.log_records):
                severity = SEVERITIES.get(record.severity_number, str(record.severity_number))
                lines += [
                    f"LogRecord #{k}",
                    f"ObservedTimestamp: {timestamp(record.observed_time_unix_nano)}",
                    f"Timestamp: {timestamp(record.time_unix_nano)}",
                    f"SeverityText: {record.severity_text}",
                    f"SeverityNumber: {severity}({record.severity_number})",
                    f"Body: {value(record.body)}",
                ]
                lines += _attributes("Attributes", record.attributes)
                lines += [
                    f"Trace ID: {record.trace_id.hex()}",
                    f"Span ID: {record.span_id.hex()}",
                    f"Flags: {record.flags}",
                ]
    return "\n".join(lines) + "\n"


def traces(request: Any) -> str:
    lines: list[str] = []
    for i, resource_spans in enumerate(request.resource_spans):
        lines += [f"ResourceSpans #{i}", f"Resource SchemaURL: {resource_spans.schema_url}"]
        lines += _attributes("Resource attributes", resource_spans.resource.attributes)
        for j, scope_spans in enumerate(resource_spans.scope_spans):
            lines += [f"ScopeSpans #{j}", f"ScopeSpans SchemaURL: {scope_spans.schema_url}"]
            lines += _scope(scope_spans.scope)
            for k, span in enumerate(scope_spans.spans):
                kind = SPAN_KINDS[span.kind] if 0 <= span.kind < len(SPAN_KINDS) else str(span.kind)
                code = span.status.code
                lines += [
                    f"Span #{k}",
                    f"    Trace ID       : {span.trace_id.hex()}",
                    f"    Parent ID      : {span.parent_span_id.hex()}",
                    f"    ID             : {span.span_id.hex()}",
                    f"    Name           : {span.name}",
                    f"    Kind           : {kind}",
                    f"    Start time     : {timestamp(span.start_time_unix_nano)}",
                    f"    End time       : {timestamp(span.end_time_unix_nano)}",
                    f"    Status code    : {STATUS_CODES[code] if 0 <= code < 3 else code}",
                    f"    Status message : {span.status.message}",
                ]
                lines += _attributes("Attributes", span.attributes)
                if span.events:
                    lines.append("Events:")
                    for e, event in enumerate(span.events):
                        lines += [
                            f"SpanEvent #{e}",
                            f"{ATTRIBUTE_PREFIX} Name: {event.name}",
                            f"{ATTRIBUTE_PREFIX} Timestamp: {timestamp(event.time_unix_nano)}",
                            f"{ATTRIBUTE_PREFIX} DroppedAttributesCount: {event.dropped_attributes_count}",
                        ]
                        lines += _attributes(
                            f"{ATTRIBUTE_PREFIX} Attributes:", event.attributes, "     " + ATTRIBUTE_PREFIX
                        )
                if span.links:
                    lines.append("Links:")
                    for n, link in enumerate(span.links):
                        lines += [
                            f"SpanLink #{n}",
                            f"{ATTRIBUTE_PREFIX} Trace ID: {link.trace_id.hex()}",
                            f"{ATTRIBUTE_PREFIX} ID: {link.span_id.hex()}",
                            f"{ATTRIBUTE_PREFIX} TraceState: {link.trace_state}",
                            f"{ATTRIBUTE_PREFIX} DroppedAttributesCount: {link.dropped_attributes_count}",
                        ]
                        lines += _attributes(
                            f"{ATTRIBUTE_PREFIX} Attributes:", link.attributes, "     " + ATTRIBUTE_PREFIX
                        )
    return "\n".join(lines) + "\n"

"""Stored spans as Jaeger's query API writes them (its "UI model", `/api/traces`): a trace is
`{traceID, spans, processes, warnings}`; each span has `traceID`, `spanID`, `flags`, `operationName`,
`references` (the parent first as `CHILD_OF`, then each link as `FOLLOWS_FROM`), `startTime` and
`duration` in microseconds, `tags`, `logs` (one per span event: an `event` field with its name, then its
attributes), `processID` (`p1`, `p2`... per distinct resource) and `warnings`; a process is
`{serviceName, tags}` (the resource's other attributes).

The tags are the translation the collector-contrib Jaeger translator makes of a span, after the query
service sorts attributes and events: the scope's `otel.scope.name`/`otel.scope.version`, the span's
attributes, `span.kind` (`server`, `client`...), `otel.status_code` (`OK`, `ERROR`) and `error: true`
for an error, `otel.status_description`, `w3c.tracestate`. Values are typed `string`, `bool`, `int64`
(a string beyond JavaScript's safe integers), `float64` or `binary` (base64); lists and maps are JSON
strings. A trace id whose high 64 bits are zero is written with 16 hex digits, as Jaeger's model does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.trace.v1 import trace_pb2

from sim.standins.jaeger.store import SPAN_KIND_NAMES, StoredTrace, service_name
from sim.telemetry.otlp import any_value

JS_MAX_SAFE_INTEGER = 2**53 - 1
JsonObject = dict[str, Any]


def trace_id_text(trace_id: bytes) -> str:
    high, low = trace_id[:8], trace_id[8:]
    return low.hex() if not any(high) else trace_id.hex()


def tag(key: str, value: Any) -> JsonObject:
    """A KeyValue of Jaeger's UI model from an OTLP AnyValue."""
    which = value.WhichOneof("value")
    plain = any_value(value)
    if which == "bool_value":
        return {"key": key, "type": "bool", "value": plain}
    if which == "int_value":
        safe = -JS_MAX_SAFE_INTEGER <= plain <= JS_MAX_SAFE_INTEGER
        return {"key": key, "type": "int64", "value": plain if safe else str(plain)}
    if which == "double_value":
        return {"key": key, "type": "float64", "value": plain}
    if which == "bytes_value":
        return {"key": key, "type": "binary", "value": base64.b64encode(plain).decode()}
    if which in ("array_value", "kvlist_value"):
        return {"key": key, "type": "string", "value": json.dumps(_jsonable(plain), separators=(",", ":"))}
    return {"key": key, "type": "string", "value": "" if plain is None else plain}


def _jsonable(plain: Any) -> Any:
    if isinstance(plain, bytes):
        return base64.b64encode(plain).decode()
    if isinstance(plain, list):
        return [_jsonable(p) for p in plain]
    if isinstance(plain, dict):
        return {k: _jsonable(p) for k, p in plain.items()}
    return plain


def _string(key: str, value: str) -> JsonObject:
    return {"key": key, "type": "string", "value": value}


def _sorted(attributes: Iterable[Any]) -> list[JsonObject]:
    return [tag(kv.key, kv.value) for kv in sorted(attributes, key=lambda kv: kv.key)]


def span_tags(scope: Any, span: trace_pb2.Span) -> list[JsonObject]:
    tags = []
    if scope.name:
        tags.append(_string("otel.scope.name", scope.name))
    if scope.version:
        tags.append(_string("otel.scope.version", scope.version))
    tags += _sorted(span.attributes)
    if 0 < span.kind < len(SPAN_KIND_NAMES):
        tags.append(_string("span.kind", SPAN_KIND_NAMES[span.kind]))
    if span.status.code == 1:
        tags.append(_string("otel.status_code", "OK"))
    elif span.status.code == 2:
        tags += [_string("otel.status_code", "ERROR"), {"key": "error", "type": "bool", "value": True}]
    if span.status.message:
        tags.append(_string("otel.status_description", span.status.message))
    if span.trace_state:
        tags.append(_string("w3c.tracestate", span.trace_state))
    return tags


def _references(span: trace_pb2.Span) -> list[JsonObject]:
    references = []
    if span.parent_span_id:
        references.append(
            {
                "refType": "CHILD_OF",
                "traceID": trace_id_text(span.trace_id),
                "spanID": span.parent_span_id.hex(),
            }
        )
    for link in span.links:
        references.append(
            {"refType": "FOLLOWS_FROM", "traceID": trace_id_text(link.trace_id), "spanID": link.span_id.hex()}
        )
    return references


def _logs(span: trace_pb2.Span) -> list[JsonObject]:
    logs = []
    for event in sorted(span.events, key=lambda e: e.name):
        fields = [_string("event", event.name)] if event.name else []
        logs.append({"timestamp": event.time_unix_nano // 1000, "fields": fields + _sorted(event.attributes)})
    return logs


def trace_json(stored: StoredTrace) -> JsonObject:
    processes: dict[str, JsonObject] = {}
    keys: dict[str, str] = {}
    spans = []
    for resource_spans, scope_spans, span in stored.spans():
        process = {
            "serviceName": service_name(resource_spans.resource),
            "tags": _sorted(kv for kv in resource_spans.resource.attributes if kv.key != "service.name"),
        }
        identity = json.dumps(process, sort_keys=True)
        if identity not in keys:
            keys[identity] = f"p{len(keys) + 1}"
            processes[keys[identity]] = process
        spans.append(
            {
                "traceID": trace_id_text(span.trace_id),
                "spanID": span.span_id.hex(),
                "flags": span.flags & 0xFF if span.flags else 0,
                "operationName": span.name,
                "references": _references(span),
                "startTime": span.start_time_unix_nano // 1000,
                "duration": max(span.end_time_unix_nano - span.start_time_unix_nano, 0) // 1000,
                "tags": span_tags(scope_spans.scope, span),
                "logs": _logs(span),
                "processID": keys[identity],
                "warnings": None,
            }
        )
    for written in spans:
        if not written["flags"]:
            del written["flags"]  # omitempty
    return {
        "traceID": trace_id_text(stored.trace_id),
        "spans": spans,
        "processes": processes,
        "warnings": None,
    }

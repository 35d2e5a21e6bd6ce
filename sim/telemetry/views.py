"""The query API's JSON: the store's records as JSON objects (for `app`) and back (for `client`).

Attribute values that are bytes leave as base64 strings (protobuf's JSON convention) and come back as
those strings; every other value round-trips unchanged.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from sim.telemetry.store import (
    Buckets,
    DataPoint,
    Edge,
    LogRecord,
    Metric,
    SignalStats,
    Span,
    SpanEvent,
    SpanLink,
    SpanStatus,
)

JsonObject = dict[str, Any]


def dumps(document: Any) -> str:
    return json.dumps(document, default=_bytes_as_base64, separators=(",", ":"))


def _bytes_as_base64(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def span_json(span: Span) -> JsonObject:
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "name": span.name,
        "kind": span.kind,
        "service": span.service,
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "attributes": span.attributes,
        "status": {"code": span.status.code, "message": span.status.message},
        "events": [
            {"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": e.attributes}
            for e in span.events
        ],
        "links": [
            {"trace_id": link.trace_id, "span_id": link.span_id, "attributes": link.attributes}
            for link in span.links
        ],
        "scope": span.scope,
        "resource": span.resource,
    }


def span_from_json(document: JsonObject) -> Span:
    status = document.get("status") or {}
    return Span(
        trace_id=document["trace_id"],
        span_id=document["span_id"],
        parent_span_id=document.get("parent_span_id"),
        name=document["name"],
        kind=document["kind"],
        service=document["service"],
        start_time_unix_nano=document.get("start_time_unix_nano", 0),
        end_time_unix_nano=document.get("end_time_unix_nano", 0),
        attributes=document.get("attributes", {}),
        status=SpanStatus(status.get("code", "UNSET"), status.get("message", "")),
        events=tuple(
            SpanEvent(e["name"], e.get("time_unix_nano", 0), e.get("attributes", {}))
            for e in document.get("events", ())
        ),
        links=tuple(
            SpanLink(link["trace_id"], link["span_id"], link.get("attributes", {}))
            for link in document.get("links", ())
        ),
        scope=document.get("scope", ""),
        resource=document.get("resource", {}),
    )


_POINT_SCALARS = ("value", "count", "sum", "min", "max", "scale", "zero_count")


def point_json(point: DataPoint) -> JsonObject:
    """A data point with only the fields its metric type has."""
    document: JsonObject = {
        "attributes": point.attributes,
        "start_time_unix_nano": point.start_time_unix_nano,
        "time_unix_nano": point.time_unix_nano,
    }
    for name in _POINT_SCALARS:
        value = getattr(point, name)
        if value is not None:
            document[name] = value
    if point.bucket_counts is not None:
        document["bucket_counts"] = list(point.bucket_counts)
    if point.explicit_bounds is not None:
        document["explicit_bounds"] = list(point.explicit_bounds)
    for side in ("positive", "negative"):
        buckets: Buckets | None = getattr(point, side)
        if buckets is not None:
            document[side] = {"offset": buckets.offset, "bucket_counts": list(buckets.bucket_counts)}
    if point.quantiles is not None:
        document["quantiles"] = [{"quantile": q, "value": v} for q, v in point.quantiles]
    return document


def point_from_json(document: JsonObject) -> DataPoint:
    def buckets(side: str) -> Buckets | None:
        found = document.get(side)
        return None if found is None else Buckets(found["offset"], tuple(found["bucket_counts"]))

    def numbers(name: str) -> tuple[Any, ...] | None:
        found = document.get(name)
        return None if found is None else tuple(found)

    quantiles = document.get("quantiles")
    return DataPoint(
        attributes=document.get("attributes", {}),
        start_time_unix_nano=document.get("start_time_unix_nano", 0),
        time_unix_nano=document.get("time_unix_nano", 0),
        bucket_counts=numbers("bucket_counts"),
        explicit_bounds=numbers("explicit_bounds"),
        positive=buckets("positive"),
        negative=buckets("negative"),
        quantiles=None if quantiles is None else tuple((q["quantile"], q["value"]) for q in quantiles),
        **{name: document.get(name) for name in _POINT_SCALARS},
    )


def metric_json(metric: Metric) -> JsonObject:
    return {
        "service": metric.service,
        "name": metric.name,
        "type": metric.type,
        "unit": metric.unit,
        "description": metric.description,
        "monotonic": metric.monotonic,
        "temporality": metric.temporality,
        "points": [point_json(p) for p in metric.points],
    }


def metric_from_json(document: JsonObject) -> Metric:
    return Metric(
        service=document["service"],
        name=document["name"],
        type=document["type"],
        points=tuple(point_from_json(p) for p in document.get("points", ())),
        unit=document.get("unit", ""),
        description=document.get("description", ""),
        monotonic=document.get("monotonic"),
        temporality=document.get("temporality"),
    )


def log_json(record: LogRecord) -> JsonObject:
    return {
        "service": record.service,
        "time_unix_nano": record.time_unix_nano,
        "observed_time_unix_nano": record.observed_time_unix_nano,
        "severity_number": record.severity_number,
        "severity_text": record.severity_text,
        "body": record.body,
        "attributes": record.attributes,
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "event_name": record.event_name,
        "scope": record.scope,
    }


def log_from_json(document: JsonObject) -> LogRecord:
    return LogRecord(
        service=document["service"],
        time_unix_nano=document.get("time_unix_nano", 0),
        observed_time_unix_nano=document.get("observed_time_unix_nano", 0),
        severity_number=document.get("severity_number", 0),
        severity_text=document.get("severity_text", ""),
        body=document.get("body"),
        attributes=document.get("attributes", {}),
        trace_id=document.get("trace_id"),
        span_id=document.get("span_id"),
        event_name=document.get("event_name", ""),
        scope=document.get("scope", ""),
    )


def edge_json(edge: Edge) -> JsonObject:
    return {"client": edge.client, "server": edge.server, "calls": edge.calls, "errors": edge.errors}


def edge_from_json(document: JsonObject) -> Edge:
    return Edge(document["client"], document["server"], document["calls"], document.get("errors", 0))


def stats_json(stats: SignalStats) -> JsonObject:
    return {
        "stored": stats.stored,
        "received": stats.received,
        "evicted": stats.evicted,
        "rejected": stats.rejected,
        "cap": stats.cap,
    }


def stats_from_json(document: JsonObject) -> SignalStats:
    return SignalStats(
        document["stored"], document["received"], document["evicted"], document["rejected"], document["cap"]
    )

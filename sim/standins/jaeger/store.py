"""Jaeger's in-memory trace storage (`jaeger_storage` backend `memory`, Jaeger 2.15): traces in a ring of
`max_traces`, the oldest trace evicted whole when a new one comes; spans arriving later for a stored trace
join it. Services and each service's operations (name and span kind) are remembered from every span.

The queries are the storage's: a search walks the traces from the most recent, keeping a trace when one
of its spans matches every condition (service, operation, start time window, duration bounds, and each
tag as a span, scope or resource attribute or a span event's attribute, compared as text; `error`,
`span.status`, `span.kind`, `scope.name`, `scope.version` and `resource.<key>` have their own meanings),
up to the query's depth; dependencies count, for every span with a parent in the trace, a call from the
parent's service to the span's (a span calling one of its own service's counts too, as here it does).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1 import trace_pb2

from sim.telemetry.collector.otlptext import as_string

SPAN_KIND_NAMES = ("", "internal", "server", "client", "producer", "consumer")
STATUS_NAMES = {"OK": 1, "ERROR": 2}
MISSING_SERVICE = "missing-service-name"
EMPTY_SERVICE = "empty-service-name"
WRONG_TYPE_SERVICE = "service-name-wrong-type"
SEARCH_DEPTH_ERROR = "search depth must be greater than 0 and less than max traces"


class StorageError(Exception):
    """A query the storage refuses (the query API answers 500 with it)."""


@dataclass
class StoredTrace:
    trace_id: bytes
    #: one ResourceSpans per arrival, each holding only this trace's spans
    resource_spans: list[trace_pb2.ResourceSpans] = field(default_factory=list)
    start: int = 0
    end: int = 0

    def spans(self) -> Iterable[tuple[trace_pb2.ResourceSpans, trace_pb2.ScopeSpans, trace_pb2.Span]]:
        for resource in self.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    yield resource, scope, span


@dataclass(frozen=True)
class TraceQuery:
    service: str = ""
    operation: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    start_min: int = 0  # ns since the epoch, 0 for unbounded
    start_max: int = 0
    duration_min: int = 0  # ns
    duration_max: int = 0
    depth: int = 100


def service_name(resource: Any) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name":
            return kv.value.string_value if kv.value.WhichOneof("value") == "string_value" else ""
    return ""


def sanitize(resource_spans: trace_pb2.ResourceSpans) -> None:
    """Jaeger's empty-service-name sanitizer: a resource's missing, empty or non-string name replaced."""
    for kv in resource_spans.resource.attributes:
        if kv.key == "service.name":
            if kv.value.WhichOneof("value") != "string_value":
                kv.value.CopyFrom(AnyValue(string_value=WRONG_TYPE_SERVICE))
            elif not kv.value.string_value:
                kv.value.string_value = EMPTY_SERVICE
            return
    added = resource_spans.resource.attributes.add()
    added.key, added.value.string_value = "service.name", MISSING_SERVICE


class MemoryStore:
    def __init__(self, max_traces: int) -> None:
        if max_traces < 1:
            raise ValueError("max traces must be greater than zero")
        self.max_traces = max_traces
        self._ring: list[StoredTrace | None] = [None] * max_traces
        self._most_recent = -1
        self._index: dict[bytes, int] = {}
        self.services: set[str] = set()
        self.operations: dict[str, set[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def write(self, resource_spans_list: Iterable[trace_pb2.ResourceSpans]) -> None:
        with self._lock:
            for resource_spans in resource_spans_list:
                sanitize(resource_spans)
                self._write(resource_spans)

    def _write(self, resource_spans: trace_pb2.ResourceSpans) -> None:
        service = service_name(resource_spans.resource)
        by_trace: dict[bytes, trace_pb2.ResourceSpans] = {}
        for scope_spans in resource_spans.scope_spans:
            by_scope: dict[bytes, trace_pb2.ScopeSpans] = {}
            for span in scope_spans.spans:
                self.services.add(service)
                self.operations.setdefault(service, set()).add(
                    (span.name, SPAN_KIND_NAMES[span.kind] if span.kind < 6 else "")
                )
                part = by_trace.get(span.trace_id)
                if part is None:
                    part = trace_pb2.ResourceSpans(
                        resource=resource_spans.resource, schema_url=resource_spans.schema_url
                    )
                    by_trace[span.trace_id] = part
                scoped = by_scope.get(span.trace_id)
                if scoped is None:
                    scoped = part.scope_spans.add(scope=scope_spans.scope, schema_url=scope_spans.schema_url)
                    by_scope[span.trace_id] = scoped
                scoped.spans.append(span)
        for trace_id, part in by_trace.items():
            spans = [s for scope in part.scope_spans for s in scope.spans]
            start = min(s.start_time_unix_nano for s in spans)
            end = max(s.end_time_unix_nano for s in spans)
            index = self._index.get(trace_id)
            if index is not None:
                stored = self._ring[index]
                assert stored is not None
                stored.resource_spans.append(part)
                stored.start, stored.end = min(stored.start, start), max(stored.end, end)
                continue
            self._most_recent = (self._most_recent + 1) % self.max_traces
            evicted = self._ring[self._most_recent]
            if evicted is not None:
                del self._index[evicted.trace_id]
            self._ring[self._most_recent] = StoredTrace(trace_id, [part], start, end)
            self._index[trace_id] = self._most_recent

    def trace(self, trace_id: bytes) -> StoredTrace | None:
        with self._lock:
            index = self._index.get(trace_id)
            return None if index is None else self._ring[index]

    def find(self, query: TraceQuery) -> list[StoredTrace]:
        if query.depth <= 0 or query.depth > self.max_traces:
            raise StorageError(SEARCH_DEPTH_ERROR)
        found: list[StoredTrace] = []
        with self._lock:
            for i in range(self.max_traces):
                if len(found) == query.depth:
                    break
                stored = self._ring[(self._most_recent - i) % self.max_traces]
                if stored is None:
                    break
                if any(_matches(resource, scope, span, query) for resource, scope, span in stored.spans()):
                    found.append(stored)
        return found

    def dependencies(self, start: int, end: int) -> dict[tuple[str, str], int]:
        """Calls between services (parent's, child's) in the traces that began after `start` and ended
        before `end` (ns; `end` 0 for no bound)."""
        calls: dict[tuple[str, str], int] = {}
        with self._lock:
            stored_traces = [self._ring[i] for i in self._index.values()]
        for stored in stored_traces:
            assert stored is not None
            if not (stored.start > start and (not end or stored.end < end)):
                continue
            services = {span.span_id: service_name(resource.resource) for resource, _, span in stored.spans()}
            for resource, _, span in stored.spans():
                if span.parent_span_id and span.parent_span_id in services:
                    key = (services[span.parent_span_id], service_name(resource.resource))
                    calls[key] = calls.get(key, 0) + 1
        return calls


def _text(values: Iterable[Any], key: str) -> str | None:
    for kv in values:
        if kv.key == key:
            return as_string(kv.value)
    return None


def _matches(resource: Any, scope: Any, span: Any, query: TraceQuery) -> bool:
    if query.service and query.service != service_name(resource.resource):
        return False
    if query.operation and query.operation != span.name:
        return False
    start = span.start_time_unix_nano
    if (query.start_min and start < query.start_min) or (query.start_max and start > query.start_max):
        return False
    elapsed = span.end_time_unix_nano - start
    if (query.duration_min and elapsed < query.duration_min) or (
        query.duration_max and elapsed > query.duration_max
    ):
        return False
    for key, wanted in query.tags.items():
        if key == "error":
            if span.status.code != (2 if wanted.lower() == "true" else 1):
                return False
        elif key == "span.status":
            if span.status.code != STATUS_NAMES.get(wanted.upper(), 0):
                return False
        elif key == "span.kind":
            kind = SPAN_KIND_NAMES[span.kind] if span.kind < 6 else ""
            if kind != wanted.lower() or not kind:
                return False
        elif key == "scope.name":
            if scope.scope.name != wanted:
                return False
        elif key == "scope.version":
            if scope.scope.version != wanted:
                return False
        elif key.startswith("resource."):
            if _text(resource.resource.attributes, key.removeprefix("resource.")) != wanted:
                return False
        elif not _tag_found(key, wanted, resource, scope, span):
            return False
    return True


def _tag_found(key: str, wanted: str, resource: Any, scope: Any, span: Any) -> bool:
    places = [span.attributes, scope.scope.attributes, resource.resource.attributes]
    places += [event.attributes for event in span.events]
    return any(_text(attributes, key) == wanted for attributes in places)

"""The receiver's model: spans, metric points and log records in bounded memory, and the queries over them.

Nothing here knows OTLP or HTTP: `otlp` turns requests into these records and `app` serves the queries.
Each signal is kept in arrival order up to its cap; past it the oldest records are evicted first and
counted. Records are frozen and never changed once stored, so a query hands out the stored objects.
One lock guards the store because the receiver decodes and stores in worker threads.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

# Attribute values are already plain Python: str, bool, int, float, bytes, lists and dicts of them.
Attributes = dict[str, Any]

SPAN_KINDS = ("INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")
METRIC_TYPES = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
CALLER_KINDS = frozenset({"CLIENT", "PRODUCER"})
CALLEE_KINDS = frozenset({"SERVER", "CONSUMER"})

DEFAULT_MAX_SPANS = 50_000
DEFAULT_MAX_METRIC_POINTS = 50_000
DEFAULT_MAX_LOGS = 20_000

RecordKind = Literal["spans", "metric_points", "logs"]


@dataclass(frozen=True, slots=True)
class SpanStatus:
    code: str = "UNSET"
    message: str = ""


@dataclass(frozen=True, slots=True)
class SpanEvent:
    name: str
    time_unix_nano: int = 0
    attributes: Attributes = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanLink:
    trace_id: str
    span_id: str
    attributes: Attributes = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Span:
    """One span; ids are lowercase hex, `parent_span_id` is None for a root span."""

    trace_id: str
    span_id: str
    name: str
    service: str
    kind: str = "INTERNAL"
    parent_span_id: str | None = None
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    attributes: Attributes = field(default_factory=dict)
    status: SpanStatus = SpanStatus()
    events: tuple[SpanEvent, ...] = ()
    links: tuple[SpanLink, ...] = ()
    scope: str = ""
    #: the exporting process's resource attributes (`k8s.pod.name` tells the replica that made the span)
    resource: Attributes = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return self.end_time_unix_nano - self.start_time_unix_nano


@dataclass(frozen=True, slots=True)
class Buckets:
    """One side of an exponential histogram: counts of consecutive buckets from `offset`."""

    offset: int = 0
    bucket_counts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DataPoint:
    """One data point; which of the optional fields are set depends on the metric's type."""

    attributes: Attributes = field(default_factory=dict)
    start_time_unix_nano: int = 0
    time_unix_nano: int = 0
    value: int | float | None = None
    count: int | None = None
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    bucket_counts: tuple[int, ...] | None = None
    explicit_bounds: tuple[float, ...] | None = None
    scale: int | None = None
    zero_count: int | None = None
    positive: Buckets | None = None
    negative: Buckets | None = None
    quantiles: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """A data point with the metric it belongs to: what the store keeps, one per point received."""

    service: str
    name: str
    type: str
    point: DataPoint
    unit: str = ""
    description: str = ""
    monotonic: bool | None = None
    temporality: str | None = None
    scope: str = ""

    @property
    def series(self) -> tuple[str, str, str]:
        """The time series this point belongs to: service, metric name and attribute set."""
        return self.service, self.name, json.dumps(self.point.attributes, sort_keys=True, default=repr)


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric of one service with the latest data point of each of its attribute sets."""

    service: str
    name: str
    type: str
    points: tuple[DataPoint, ...]
    unit: str = ""
    description: str = ""
    monotonic: bool | None = None
    temporality: str | None = None


@dataclass(frozen=True, slots=True)
class LogRecord:
    service: str
    time_unix_nano: int = 0
    observed_time_unix_nano: int = 0
    severity_number: int = 0
    severity_text: str = ""
    body: Any = None
    attributes: Attributes = field(default_factory=dict)
    trace_id: str | None = None
    span_id: str | None = None
    event_name: str = ""
    scope: str = ""


@dataclass(frozen=True, slots=True)
class Edge:
    """Calls from one service to another seen in the stored spans; `errors` counts the callee's errors."""

    client: str
    server: str
    calls: int
    errors: int = 0


@dataclass(frozen=True, slots=True)
class SignalStats:
    stored: int
    received: int
    evicted: int
    rejected: int
    cap: int


class _Ring(Generic[T]):
    """Records in arrival order, at most `cap`, the oldest evicted first, with an index per key function.

    Every index bucket is filled in arrival order too, so the record being evicted is always the first
    of each bucket it is in: eviction is O(1).
    """

    def __init__(self, cap: int, keys: Mapping[str, Callable[[T], str | None]]) -> None:
        if cap < 1:
            raise ValueError(f"a cap must be at least 1, not {cap}")
        self.cap = cap
        self.items: deque[T] = deque()
        self.received = 0
        self.evicted = 0
        self.rejected = 0
        self._keys = dict(keys)
        self._index: dict[str, dict[str, deque[T]]] = {name: {} for name in keys}

    def add(self, item: T) -> T | None:
        """Store `item`; return the record it pushed out, if any."""
        self.items.append(item)
        self.received += 1
        for name, key_of in self._keys.items():
            key = key_of(item)
            if key:
                self._index[name].setdefault(key, deque()).append(item)
        if len(self.items) <= self.cap:
            return None
        oldest = self.items.popleft()
        self.evicted += 1
        for name, key_of in self._keys.items():
            key = key_of(oldest)
            if key:
                bucket = self._index[name][key]
                bucket.popleft()
                if not bucket:
                    del self._index[name][key]
        return oldest

    def lookup(self, index: str, key: str) -> deque[T]:
        return self._index[index].get(key) or deque()

    def candidates(self, **keys: str | None) -> deque[T]:
        """The smallest of the index buckets for the given keys (all records when no key is given)."""
        buckets = [self.lookup(index, key) for index, key in keys.items() if key is not None]
        return min(buckets, key=len) if buckets else self.items

    def stats(self) -> SignalStats:
        return SignalStats(len(self.items), self.received, self.evicted, self.rejected, self.cap)

    def clear(self) -> None:
        self.items.clear()
        for index in self._index.values():
            index.clear()
        self.received = self.evicted = self.rejected = 0


def attribute_matches(value: Any, wanted: Any) -> bool:
    """Attribute equality as a query means it: `"200"` matches 200 and `"true"` matches True."""
    if value == wanted and isinstance(value, bool) == isinstance(wanted, bool):
        return True
    if isinstance(wanted, str) and value is not None:
        return _as_text(value) == wanted
    return False


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, default=repr)
    return str(value)


def _newest(items: deque[T], keep: Callable[[T], bool], limit: int | None) -> list[T]:
    """Up to `limit` of the most recently received `items` that `keep` accepts, oldest first."""
    found: list[T] = []
    for item in reversed(items):
        if keep(item):
            found.append(item)
            if limit is not None and len(found) >= limit:
                break
    found.reverse()
    return found


class TelemetryStore:
    """What the receiver has been sent, bounded per signal, with the queries tests ask of it."""

    def __init__(
        self,
        max_spans: int = DEFAULT_MAX_SPANS,
        max_metric_points: int = DEFAULT_MAX_METRIC_POINTS,
        max_logs: int = DEFAULT_MAX_LOGS,
    ) -> None:
        self._lock = threading.Lock()
        self._spans: _Ring[Span] = _Ring(
            max_spans, {"trace_id": lambda s: s.trace_id, "service": lambda s: s.service}
        )
        self._points: _Ring[MetricPoint] = _Ring(max_metric_points, {"service": lambda p: p.service})
        self._logs: _Ring[LogRecord] = _Ring(
            max_logs, {"trace_id": lambda r: r.trace_id, "service": lambda r: r.service}
        )
        self._latest: dict[tuple[str, str, str], MetricPoint] = {}
        self._services: set[str] = set()

    def add_spans(self, spans: Iterable[Span], rejected: int = 0) -> None:
        with self._lock:
            self._spans.rejected += rejected
            for span in spans:
                self._services.add(span.service)
                self._spans.add(span)

    def add_metric_points(self, points: Iterable[MetricPoint], rejected: int = 0) -> None:
        with self._lock:
            self._points.rejected += rejected
            for point in points:
                self._services.add(point.service)
                self._latest[point.series] = point
                evicted = self._points.add(point)
                # A series whose newest point is evicted has not been updated since: it goes too.
                if evicted is not None and self._latest.get(evicted.series) is evicted:
                    del self._latest[evicted.series]

    def add_logs(self, records: Iterable[LogRecord], rejected: int = 0) -> None:
        with self._lock:
            self._logs.rejected += rejected
            for record in records:
                self._services.add(record.service)
                self._logs.add(record)

    def trace(self, trace_id: str) -> list[Span]:
        """The stored spans of one trace, by start time (empty when none is stored)."""
        with self._lock:
            spans = list(self._spans.lookup("trace_id", trace_id))
        return sorted(spans, key=lambda s: s.start_time_unix_nano)

    def spans(
        self,
        *,
        service: str | None = None,
        name: str | None = None,
        trace_id: str | None = None,
        kind: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[Span]:
        """Spans matching every filter given: the newest `limit` of them, oldest first."""
        wanted = dict(attributes or {})

        def keep(span: Span) -> bool:
            return (
                (name is None or span.name == name)
                and (kind is None or span.kind == kind)
                and (service is None or span.service == service)
                and (trace_id is None or span.trace_id == trace_id)
                and all(attribute_matches(span.attributes.get(k), v) for k, v in wanted.items())
            )

        with self._lock:
            return _newest(self._spans.candidates(trace_id=trace_id, service=service), keep, limit)

    def services(self) -> list[str]:
        """Every service that has sent any telemetry since the last `clear`."""
        with self._lock:
            return sorted(self._services)

    def service_graph(self) -> list[Edge]:
        """Edges caller -> callee between services, counted from the stored spans.

        A CLIENT or PRODUCER span in service A whose child SERVER or CONSUMER span is in service B is
        a call A -> B; a CONSUMER span whose parent (or, failing that, a linked span) is a PRODUCER
        span is a message from the producer's service, even within one service.
        """
        with self._lock:
            spans = list(self._spans.items)
        by_id = {(s.trace_id, s.span_id): s for s in spans}
        calls: Counter[tuple[str, str]] = Counter()
        errors: Counter[tuple[str, str]] = Counter()
        for span in spans:
            caller = _caller(span, by_id)
            if caller is not None:
                calls[caller, span.service] += 1
                if span.status.code == "ERROR":
                    errors[caller, span.service] += 1
        return [
            Edge(client, server, n, errors[client, server]) for (client, server), n in sorted(calls.items())
        ]

    def metrics(self, service: str | None = None, name: str | None = None) -> list[Metric]:
        """Metrics by service and name, each with the latest data point of every attribute set."""
        with self._lock:
            latest = [
                p
                for p in self._latest.values()
                if (service is None or p.service == service) and (name is None or p.name == name)
            ]
        grouped: dict[tuple[str, str], list[MetricPoint]] = {}
        for point in latest:
            grouped.setdefault((point.service, point.name), []).append(point)
        result = []
        for (metric_service, metric_name), points in sorted(grouped.items()):
            points.sort(key=lambda p: p.series)
            newest = max(points, key=lambda p: p.point.time_unix_nano)
            result.append(
                Metric(
                    service=metric_service,
                    name=metric_name,
                    type=newest.type,
                    points=tuple(p.point for p in points),
                    unit=newest.unit,
                    description=newest.description,
                    monotonic=newest.monotonic,
                    temporality=newest.temporality,
                )
            )
        return result

    def logs(
        self, *, service: str | None = None, trace_id: str | None = None, limit: int | None = None
    ) -> list[LogRecord]:
        """Log records of a service and/or trace: the newest `limit` of them, oldest first."""

        def keep(record: LogRecord) -> bool:
            return (service is None or record.service == service) and (
                trace_id is None or record.trace_id == trace_id
            )

        with self._lock:
            return _newest(self._logs.candidates(trace_id=trace_id, service=service), keep, limit)

    def stats(self) -> dict[RecordKind, SignalStats]:
        with self._lock:
            return {
                "spans": self._spans.stats(),
                "metric_points": self._points.stats(),
                "logs": self._logs.stats(),
            }

    def clear(self) -> None:
        """Forget everything, counters included."""
        with self._lock:
            self._spans.clear()
            self._points.clear()
            self._logs.clear()
            self._latest.clear()
            self._services.clear()


def _caller(span: Span, by_id: Mapping[tuple[str, str], Span]) -> str | None:
    """The service that called `span`'s service, if `span` is the receiving end of a call or message."""
    if span.kind not in CALLEE_KINDS:
        return None
    parent = by_id.get((span.trace_id, span.parent_span_id)) if span.parent_span_id else None
    if parent is not None and parent.kind in CALLER_KINDS:
        if parent.service != span.service or (parent.kind == "PRODUCER" and span.kind == "CONSUMER"):
            return parent.service
        return None
    if span.kind == "CONSUMER":
        for link in span.links:
            linked = by_id.get((link.trace_id, link.span_id))
            if linked is not None and linked.kind == "PRODUCER":
                return linked.service
    return None

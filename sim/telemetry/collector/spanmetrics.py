"""The `spanmetrics` connector (collector-contrib 0.102): RED metrics from spans, as the OpenTelemetry
Demo's collector makes them. A traces pipeline exports to it; every `metrics_flush_interval` it hands the
metrics pipelines that receive from it, per resource of the spans (the resource's attributes, as is):

- `<namespace>.calls`: a monotonic cumulative sum, one count per span;
- `<namespace>.duration`: a cumulative explicit-bucket histogram of span durations, unit `ms`, buckets
  2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000 unless configured;

each data point with the attributes `service.name`, `span.name`, `span.kind` (`SPAN_KIND_SERVER`...),
`status.code` (`STATUS_CODE_UNSET`...) and the configured `dimensions` (a span attribute, else a resource
attribute, else the dimension's default). The namespace is `traces.span.metrics` by default, so the
Prometheus exporter names them `traces_span_metrics_calls_total` and
`traces_span_metrics_duration_milliseconds_{bucket,sum,count}`. Spans of a resource without
`service.name` are skipped. Delta temporality, exponential histograms, exemplars and events are refused.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from sim.telemetry.collector import pdata
from sim.telemetry.collector.components import Component, Consumer, Factory, Host
from sim.telemetry.collector.config import ComponentId, ConfigError, Signal
from sim.telemetry.collector.settings import ANY, duration

log = logging.getLogger("otelcol.spanmetrics")

DEFAULT_NAMESPACE = "traces.span.metrics"
DEFAULT_BUCKETS_MS = (2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10_000, 15_000)
UNIT_DIVIDERS = {"ms": 1e6, "s": 1e9}
SPAN_KINDS = (
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
)
STATUS_CODES = ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR")
SCOPE = "spanmetricsconnector"
DEFAULTS = {
    "namespace": DEFAULT_NAMESPACE,
    "metrics_flush_interval": "15s",
    "aggregation_temporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
    "dimensions": ANY,
    "dimensions_cache_size": 1000,
    "resource_metrics_key_attributes": ANY,
    "histogram": {"unit": "ms", "explicit": ANY, "exponential": ANY, "disable": False},
    "exemplars": {"enabled": False},
}


@dataclass(frozen=True)
class Dimension:
    name: str
    default: str | None = None


@dataclass
class _Series:
    attributes: list[KeyValue]
    start: int
    calls: int = 0
    buckets: list[int] = field(default_factory=list)
    total: float = 0.0


@dataclass
class _Resource:
    attributes: list[KeyValue]
    series: dict[tuple[str, ...], _Series] = field(default_factory=dict)


def check(where: str, settings: dict[str, Any]) -> tuple[float, tuple[float, ...], list[Dimension]]:
    """The flush interval, the bucket bounds and the dimensions; ConfigError for what is refused."""
    interval = duration(f"{where}::metrics_flush_interval", settings["metrics_flush_interval"])
    if interval <= 0:
        raise ConfigError(f"{where}: metrics_flush_interval must be greater than zero")
    if settings["aggregation_temporality"] != "AGGREGATION_TEMPORALITY_CUMULATIVE":
        temporality = settings["aggregation_temporality"]
        raise ConfigError(
            f"{where}: aggregation_temporality {temporality!r} is not implemented by the stand-in"
        )
    histogram = settings["histogram"]
    if histogram["unit"] not in UNIT_DIVIDERS:
        raise ConfigError(f"{where}::histogram::unit: {histogram['unit']!r} is not ms or s")
    if histogram["exponential"] is not None or histogram["disable"]:
        raise ConfigError(
            f"{where}::histogram: only explicit-bucket histograms are implemented by the stand-in"
        )
    if settings["exemplars"]["enabled"]:
        raise ConfigError(f"{where}::exemplars: exemplars are not implemented by the stand-in")
    bounds: tuple[float, ...] = tuple(
        float(b) / (1000 if histogram["unit"] == "s" else 1) for b in DEFAULT_BUCKETS_MS
    )
    explicit = histogram["explicit"]
    if explicit is not None:
        if not isinstance(explicit, dict) or set(explicit) - {"buckets"}:
            raise ConfigError(f"{where}::histogram::explicit: only buckets is implemented by the stand-in")
        given = explicit.get("buckets") or []
        scale = 1.0 if histogram["unit"] == "s" else 1000.0
        bounds = tuple(duration(f"{where}::histogram::explicit::buckets", b) * scale for b in given)
    dimensions = []
    for item in settings["dimensions"] or []:
        if not isinstance(item, dict) or not item.get("name") or set(item) - {"name", "default"}:
            raise ConfigError(f"{where}::dimensions: each dimension is a name and an optional default")
        default = item.get("default")
        dimensions.append(Dimension(str(item["name"]), None if default is None else str(default)))
    return interval, bounds, dimensions


def _string(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _text(value: AnyValue) -> str:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which in ("int_value", "double_value"):
        return str(getattr(value, which))
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    return "" if which is None else str(getattr(value, which))


class SpanMetrics(Component, Consumer):
    def __init__(self, component: ComponentId, settings: dict[str, Any], metrics: Consumer) -> None:
        self.id = component
        self.interval, self.bounds, self.dimensions = check(f"connectors::{component}", settings)
        namespace = settings["namespace"]
        self.calls_name = f"{namespace}.calls" if namespace else "calls"
        self.duration_name = f"{namespace}.duration" if namespace else "duration"
        self.unit = settings["histogram"]["unit"]
        self.divider = UNIT_DIVIDERS[self.unit]
        self.metrics = metrics
        self._resources: dict[tuple[bytes, ...], _Resource] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flushing())

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def consume(self, signal: Signal, data: Message) -> None:
        now = time.time_ns()
        for resource_spans in pdata.resources("traces", data):
            attributes = list(resource_spans.resource.attributes)
            by_key = {kv.key: kv.value for kv in attributes}
            service = by_key.get("service.name")
            if service is None:
                continue
            key = tuple(sorted(kv.SerializeToString(deterministic=True) for kv in attributes))
            resource = self._resources.setdefault(key, _Resource(attributes))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self._observe(resource, _text(service), span, by_key, now)

    def _observe(
        self, resource: _Resource, service: str, span: Any, by_key: Mapping[str, AnyValue], now: int
    ) -> None:
        kind = SPAN_KINDS[span.kind] if 0 <= span.kind < len(SPAN_KINDS) else SPAN_KINDS[0]
        status = (
            STATUS_CODES[span.status.code] if 0 <= span.status.code < len(STATUS_CODES) else STATUS_CODES[0]
        )
        attributes = [
            _string("service.name", service),
            _string("span.name", span.name),
            _string("span.kind", kind),
            _string("status.code", status),
        ]
        span_attributes = {kv.key: kv.value for kv in span.attributes}
        for dimension in self.dimensions:
            value = span_attributes.get(dimension.name) or by_key.get(dimension.name)
            if value is not None:
                attributes.append(KeyValue(key=dimension.name, value=value))
            elif dimension.default is not None:
                attributes.append(_string(dimension.name, dimension.default))
        key = tuple(kv.SerializeToString(deterministic=True).hex() for kv in attributes)
        series = resource.series.get(key)
        if series is None:
            series = _Series(attributes, now, buckets=[0] * (len(self.bounds) + 1))
            resource.series[key] = series
        elapsed = max(span.end_time_unix_nano - span.start_time_unix_nano, 0) / self.divider
        series.calls += 1
        series.total += elapsed
        series.buckets[bisect.bisect_left(self.bounds, elapsed)] += 1

    def build(self) -> Message:
        """The metrics of every resource seen, cumulative since each series began."""
        now = time.time_ns()
        request = pdata.new("metrics")
        for resource in self._resources.values():
            out = request.resource_metrics.add()  # type: ignore[attr-defined]
            out.resource.attributes.extend(resource.attributes)
            scope = out.scope_metrics.add()
            scope.scope.name = SCOPE
            calls = scope.metrics.add()
            calls.name = self.calls_name
            calls.sum.is_monotonic = True
            calls.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
            histogram = scope.metrics.add()
            histogram.name = self.duration_name
            histogram.unit = self.unit
            histogram.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
            for series in resource.series.values():
                point = calls.sum.data_points.add()
                point.attributes.extend(series.attributes)
                point.start_time_unix_nano, point.time_unix_nano = series.start, now
                point.as_int = series.calls
                bucketed = histogram.histogram.data_points.add()
                bucketed.attributes.extend(series.attributes)
                bucketed.start_time_unix_nano, bucketed.time_unix_nano = series.start, now
                bucketed.count = series.calls
                bucketed.sum = series.total
                bucketed.bucket_counts.extend(series.buckets)
                bucketed.explicit_bounds.extend(self.bounds)
        return request

    async def _flushing(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self._resources:
                continue
            try:
                await self.metrics.consume("metrics", self.build())
            except Exception as err:  # noqa: BLE001 - the next flush carries the same cumulative counts
                log.error("connector %s: failed ConsumeMetrics: %s", self.id, err)


def _build(
    component: ComponentId, settings: dict[str, Any], host: Host, following: Mapping[Signal, Consumer]
) -> Component:
    return SpanMetrics(component, settings, following["metrics"])


FACTORY = Factory("connectors", "spanmetrics", DEFAULTS, frozenset({("traces", "metrics")}), _build, check)

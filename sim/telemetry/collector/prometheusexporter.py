"""The `prometheus` exporter (collector-contrib 0.102): the metrics it is sent, kept as their latest
values, in Prometheus' text format at `http://<endpoint>/metrics`.

Each data point is one series: its metric's Prometheus name (`promnames`), its attributes as labels, and
`job` (`service.namespace/service.name`, or `service.name`) and `instance` (`service.instance.id`) from
its resource; with `resource_to_telemetry_conversion` every resource attribute is a label as well.
Monotonic sums are counters (cumulative values as sent, delta values added up), other sums and gauges
gauges, explicit-bucket histograms histograms (`_bucket` with `le`, `_sum`, `_count`), summaries
summaries; exponential histograms are dropped, as this version does. Every resource with attributes
besides the service's name, namespace and instance id also gives a `target_info` series with them. A
series not updated for `metric_expiration` (5m) is dropped. Numbers are written as Go's client writes them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from google.protobuf.message import Message
from quart import Quart, Response

from sim.telemetry.collector import pdata
from sim.telemetry.collector.components import Component, Consumer, Factory, Host
from sim.telemetry.collector.config import ComponentId, ConfigError, Signal
from sim.telemetry.collector.promnames import label_name, metric_name
from sim.telemetry.collector.servers import HttpServer
from sim.telemetry.collector.settings import ANY, duration, endpoint
from sim.telemetry.otlp import any_value

log = logging.getLogger("otelcol.prometheusexporter")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULTS = {
    "endpoint": "",
    "namespace": "",
    "const_labels": ANY,
    "send_timestamps": False,
    "metric_expiration": "5m",
    "resource_to_telemetry_conversion": {"enabled": False},
    "enable_open_metrics": False,
    "add_metric_suffixes": True,
}
SERVICE_KEYS = ("service.name", "service.namespace", "service.instance.id")

Labels = tuple[tuple[str, str], ...]


def check(where: str, settings: dict[str, Any]) -> None:
    endpoint(f"{where}::endpoint", settings["endpoint"])
    duration(f"{where}::metric_expiration", settings["metric_expiration"])
    for option in ("send_timestamps", "enable_open_metrics"):
        if settings[option]:
            raise ConfigError(f"{where}: option {option} is not implemented by the stand-in")
    if not settings["add_metric_suffixes"]:
        raise ConfigError(f"{where}: add_metric_suffixes: false is not implemented by the stand-in")


@dataclass
class Sample:
    """One series' latest value: a number, or for a histogram or summary its parts."""

    value: float = 0.0
    count: int = 0
    total: float = 0.0
    buckets: tuple[tuple[float, int], ...] = ()  # (upper bound, cumulative count), +Inf excluded
    quantiles: tuple[tuple[float, float], ...] = ()
    start: int = 0
    updated: float = field(default_factory=time.monotonic)


@dataclass
class Family:
    name: str
    type: str  # counter, gauge, histogram, summary
    help: str
    series: dict[Labels, Sample] = field(default_factory=dict)


def _text(value: Any) -> str:
    plain = any_value(value)
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, float):
        return format_float(plain)
    if isinstance(plain, list | dict):
        return json.dumps(plain, separators=(",", ":"))
    return "" if plain is None else str(plain)


class Accumulator:
    """The latest value of every series the exporter has been sent, by metric family."""

    def __init__(self, namespace: str, resource_labels: bool, const_labels: Mapping[str, str]) -> None:
        self.namespace = namespace
        self.resource_labels = resource_labels
        self.const_labels = {label_name(k): str(v) for k, v in const_labels.items()}
        self.families: dict[str, Family] = {}
        self.targets: dict[Labels, tuple[Labels, float]] = {}

    def add(self, data: Message) -> None:
        for resource_metrics in pdata.resources("metrics", data):
            resource = list(resource_metrics.resource.attributes)
            base = self._resource_labels(resource)
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    self._add_metric(metric, resource, base)

    def _resource_labels(self, resource: list[Any]) -> dict[str, str]:
        by_key = {kv.key: _text(kv.value) for kv in resource}
        labels: dict[str, str] = {}
        if self.resource_labels:
            labels |= {label_name(k): v for k, v in by_key.items()}
        job = by_key.get("service.name")
        if job is not None and by_key.get("service.namespace"):
            job = f"{by_key['service.namespace']}/{job}"
        identity: dict[str, str] = {}
        if job is not None:
            identity["job"] = job
        if by_key.get("service.instance.id") is not None:
            identity["instance"] = by_key["service.instance.id"]
        info = {label_name(k): v for k, v in by_key.items() if k not in SERVICE_KEYS}
        if info:
            key = tuple(sorted(identity.items()))
            self.targets[key] = (
                tuple(sorted((info | identity | self.const_labels).items())),
                time.monotonic(),
            )
        return labels | identity

    def _family(self, name: str, kind: str, help_text: str) -> Family:
        family = self.families.get(name)
        if family is None or family.type != kind:
            family = Family(name, kind, help_text)
            self.families[name] = family
        return family

    def _labels(self, point: Any, base: Mapping[str, str]) -> dict[str, str]:
        labels: dict[str, str] = {}
        for kv in point.attributes:
            name, value = label_name(kv.key), _text(kv.value)
            labels[name] = f"{labels[name]};{value}" if name in labels else value
        return {**base, **labels, **self.const_labels}

    def _add_metric(self, metric: Any, resource: list[Any], base: Mapping[str, str]) -> None:
        which = metric.WhichOneof("data")
        if which == "gauge" or (which == "sum" and not metric.sum.is_monotonic):
            points = metric.gauge.data_points if which == "gauge" else metric.sum.data_points
            name = metric_name(metric.name, metric.unit, gauge=True, namespace=self.namespace)
            family = self._family(name, "gauge", metric.description)
            for point in points:
                family.series[_key(self._labels(point, base))] = Sample(value=_number(point))
        elif which == "sum":
            name = metric_name(metric.name, metric.unit, monotonic_sum=True, namespace=self.namespace)
            family = self._family(name, "counter", metric.description)
            delta = metric.sum.aggregation_temporality == 1
            for point in metric.sum.data_points:
                key = _key(self._labels(point, base))
                value = _number(point)
                previous = family.series.get(key)
                if delta and previous is not None and point.start_time_unix_nano >= previous.start:
                    value += previous.value
                family.series[key] = Sample(value=value, start=point.time_unix_nano if delta else 0)
        elif which == "histogram":
            name = metric_name(metric.name, metric.unit, namespace=self.namespace)
            family = self._family(name, "histogram", metric.description)
            for point in metric.histogram.data_points:
                running, buckets = 0, []
                for bound, count in zip(point.explicit_bounds, point.bucket_counts, strict=False):
                    running += count
                    buckets.append((bound, running))
                sample = Sample(count=point.count, total=point.sum, buckets=tuple(buckets))
                family.series[_key(self._labels(point, base))] = sample
        elif which == "summary":
            name = metric_name(metric.name, metric.unit, namespace=self.namespace)
            family = self._family(name, "summary", metric.description)
            for point in metric.summary.data_points:
                quantiles = tuple((q.quantile, q.value) for q in point.quantile_values)
                sample = Sample(count=point.count, total=point.sum, quantiles=quantiles)
                family.series[_key(self._labels(point, base))] = sample
        else:
            log.debug(
                "metric %s: %s is not exported by this version's prometheus exporter", metric.name, which
            )

    def expire(self, seconds: float) -> None:
        cutoff = time.monotonic() - seconds
        for family in list(self.families.values()):
            family.series = {k: s for k, s in family.series.items() if s.updated >= cutoff}
            if not family.series:
                del self.families[family.name]
        self.targets = {k: v for k, v in self.targets.items() if v[1] >= cutoff}

    def exposition(self) -> str:
        """Every family in Prometheus' text format, families and series sorted as Go's client sorts them."""
        families = dict(self.families)
        if self.targets:
            info = Family("target_info", "gauge", "Target metadata")
            info.series = {labels: Sample(value=1) for labels, _ in self.targets.values()}
            families.setdefault("target_info", info)
        lines: list[str] = []
        for name in sorted(families):
            family = families[name]
            lines.append(f"# HELP {name} {_escape_help(family.help)}")
            lines.append(f"# TYPE {name} {family.type}")
            for labels in sorted(family.series, key=lambda k: [v for _, v in k]):
                lines += _samples(name, family.type, labels, family.series[labels])
        return "\n".join(lines) + ("\n" if lines else "")


def _key(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((k, v) for k, v in labels.items() if v != ""))


def _number(point: Any) -> float:
    which = point.WhichOneof("value")
    return float(getattr(point, which)) if which else 0.0


def _samples(name: str, kind: str, labels: Labels, sample: Sample) -> Iterable[str]:
    if kind in ("counter", "gauge"):
        yield f"{name}{_labels(labels)} {format_float(sample.value)}"
        return
    if kind == "histogram":
        for bound, count in sample.buckets:
            yield f"{name}_bucket{_labels(labels, ('le', format_float(bound)))} {count}"
        yield f"{name}_bucket{_labels(labels, ('le', '+Inf'))} {sample.count}"
    else:
        for quantile, value in sample.quantiles:
            yield f"{name}{_labels(labels, ('quantile', format_float(quantile)))} {format_float(value)}"
    yield f"{name}_sum{_labels(labels)} {format_float(sample.total)}"
    yield f"{name}_count{_labels(labels)} {sample.count}"


def _labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    pairs = [*labels, *([extra] if extra else [])]
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape_value(v)}"' for k, v in pairs) + "}"


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_float(value: float) -> str:
    """A number as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it (Prometheus' client does)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exponent)  # where the decimal point goes, from the left of the digits
    e = point - 1
    prefix = "-" if sign else ""
    if e < -4 or e >= 6:  # Go's shortest %g switches to an exponent at 1e+06
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'+' if e >= 0 else '-'}{abs(e):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{prefix}{text}{'0' * (point - len(text))}"
    return f"{prefix}{text[:point]}.{text[point:]}"


class PrometheusExporter(Component, Consumer):
    def __init__(self, component: ComponentId, settings: dict[str, Any], host: Host) -> None:
        where = f"exporters::{component}"
        check(where, settings)
        self.expiration = duration(f"{where}::metric_expiration", settings["metric_expiration"])
        self.accumulator = Accumulator(
            settings["namespace"],
            bool(settings["resource_to_telemetry_conversion"]["enabled"]),
            settings["const_labels"] or {},
        )
        address = host.bind(endpoint(f"{where}::endpoint", settings["endpoint"]), f"{where}::endpoint")
        self.server = HttpServer(self._app(), address, f"exporter {component}")

    def _app(self) -> Quart:
        app = Quart(__name__)

        @app.get("/metrics")
        async def metrics() -> Response:
            self.accumulator.expire(self.expiration)
            return Response(self.accumulator.exposition(), content_type=CONTENT_TYPE)

        return app

    async def start(self) -> None:
        await self.server.start()

    async def shutdown(self) -> None:
        await self.server.stop()

    async def consume(self, signal: Signal, data: Message) -> None:
        self.accumulator.add(data)


def _build(
    component: ComponentId, settings: dict[str, Any], host: Host, following: Mapping[Signal, Consumer]
) -> Component:
    return PrometheusExporter(component, settings, host)


FACTORY = Factory("exporters", "prometheus", DEFAULTS, frozenset({"metrics"}), _build, check)

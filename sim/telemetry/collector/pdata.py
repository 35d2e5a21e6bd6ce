"""The data flowing through the stand-in's pipelines: OTLP export requests, one message type per signal,
and what the components ask of them (how many items they hold, several merged into one)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.message import Message

from sim.telemetry.collector.config import Signal
from sim.telemetry.otlp import REQUEST_TYPES

#: the repeated field of each request holding its resources
RESOURCES = {"traces": "resource_spans", "metrics": "resource_metrics", "logs": "resource_logs"}


def new(signal: Signal) -> Message:
    return REQUEST_TYPES[signal]()


def resources(signal: Signal, data: Message) -> Any:
    return getattr(data, RESOURCES[signal])


def items(signal: Signal, data: Message) -> int:
    """Spans, metric data points or log records: what the batch processor counts."""
    total = 0
    for resource in resources(signal, data):
        if signal == "traces":
            total += sum(len(scope.spans) for scope in resource.scope_spans)
        elif signal == "logs":
            total += sum(len(scope.log_records) for scope in resource.scope_logs)
        else:
            for scope in resource.scope_metrics:
                total += sum(data_points(metric) for metric in scope.metrics)
    return total


def data_points(metric: Any) -> int:
    which = metric.WhichOneof("data")
    return 0 if which is None else len(getattr(metric, which).data_points)


def merge(signal: Signal, parts: Iterable[Message]) -> Message:
    """One request holding every resource of `parts`, in order."""
    merged = new(signal)
    target = resources(signal, merged)
    for part in parts:
        target.extend(resources(signal, part))
    return merged

"""The `debug` exporter (0.102): writes what it is sent to the collector's log (stderr), in the
collector's console log format (`<ISO time>\\t<level>\\t<message>\\t<JSON fields>`). Every batch gives a
summary entry (`TracesExporter`, `MetricsExporter`, `LogsExporter` with its counts); at `detailed`
verbosity a second entry holds the batch as `otlptext` prints it. `normal` is `basic` in this version.
Entries are sampled per message as zap samples them: the first `sampling_initial` each second, then
every `sampling_thereafter`-th. Detailed metrics are not implemented (refused).

This is where the deploy keeps the shop's logs: the suite reads them back from the pod's log.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from google.protobuf.message import Message

from sim.telemetry.collector import otlptext, pdata
from sim.telemetry.collector.components import Component, Consumer, Factory, Host
from sim.telemetry.collector.config import SIGNALS, ComponentId, ConfigError, Signal
from sim.telemetry.collector.settings import number

VERBOSITIES = ("basic", "normal", "detailed")
DEFAULTS = {"verbosity": "basic", "sampling_initial": 2, "sampling_thereafter": 1}
SUMMARY = {
    "traces": ("TracesExporter", "resource spans", "spans"),
    "metrics": ("MetricsExporter", "resource metrics", "data points"),
    "logs": ("LogsExporter", "resource logs", "log records"),
}


def check(where: str, settings: dict[str, Any]) -> None:
    if settings["verbosity"] not in VERBOSITIES:
        raise ConfigError(
            f"{where}::verbosity: {settings['verbosity']!r} is not one of {', '.join(VERBOSITIES)}"
        )
    number(f"{where}::sampling_initial", settings["sampling_initial"], low=0)
    number(f"{where}::sampling_thereafter", settings["sampling_thereafter"], low=0)


def log_line(message: str, fields: Mapping[str, Any], now: float | None = None) -> str:
    """One entry as the collector's console logger writes it."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    encoded = json.dumps(dict(fields), separators=(", ", ": "))
    return f"{stamp}\tinfo\t{message}\t{encoded}\n"


class Sampler:
    """zap's sampler: per message, the first `initial` entries of each second, then every `thereafter`-th."""

    def __init__(self, initial: int, thereafter: int) -> None:
        self.initial, self.thereafter = initial, thereafter
        self._counts: dict[str, tuple[int, int]] = {}

    def allows(self, message: str) -> bool:
        second = int(time.monotonic())
        tick, count = self._counts.get(message, (second, 0))
        count = count + 1 if tick == second else 1
        self._counts[message] = (second, count)
        if count <= self.initial:
            return True
        return self.thereafter > 0 and (count - self.initial) % self.thereafter == 0


class DebugExporter(Component, Consumer):
    def __init__(self, component: ComponentId, settings: dict[str, Any], out: TextIO | None = None) -> None:
        self.id = component
        self.detailed = settings["verbosity"] == "detailed"
        self.sampler = Sampler(int(settings["sampling_initial"]), int(settings["sampling_thereafter"]))
        self.out = out or sys.stderr

    def serves(self, where: str, signals: frozenset[Signal]) -> None:
        if self.detailed and "metrics" in signals:
            raise ConfigError(f"{where}: detailed output of metrics is not implemented by the stand-in")

    async def consume(self, signal: Signal, data: Message) -> None:
        message, resources_key, items_key = SUMMARY[signal]
        fields = {"kind": "exporter", "data_type": signal, "name": str(self.id)}
        if self.sampler.allows(message):
            counts = {resources_key: len(pdata.resources(signal, data)), items_key: pdata.items(signal, data)}
            self.out.write(log_line(message, fields | counts))
        if self.detailed:
            text = otlptext.logs(data) if signal == "logs" else otlptext.traces(data)
            if self.sampler.allows(text):
                self.out.write(log_line(text, fields))
        self.out.flush()


def _build(
    component: ComponentId, settings: dict[str, Any], host: Host, following: Mapping[Signal, Consumer]
) -> Component:
    return DebugExporter(component, settings)


FACTORY = Factory("exporters", "debug", DEFAULTS, frozenset(SIGNALS), _build, check)

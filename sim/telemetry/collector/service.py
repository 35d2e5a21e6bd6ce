"""The collector's service: a configuration checked against a distribution and built into running
components wired as its pipelines say.

As in the collector: every configured component is checked (its type must exist in the distribution and
its settings must be ones the stand-in implements), used or not; a receiver is one instance that hands
each signal to every pipeline listing it; processors are one instance per pipeline, in order; an
exporter is one instance whatever the pipelines using it; a connector is the exporter of some pipelines
and the receiver of others, for the signal pairs it supports. Components start from the back (extensions,
exporters, connectors, processors, receivers) and shut down from the front, so that nothing is sent to a
component that is not running and what is held is flushed on the way out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.telemetry.collector.components import Component, Consumer, Distribution, Factory, Fanout, Host
from sim.telemetry.collector.config import KINDS, ComponentId, Config, ConfigError, Kind, Pipeline, Signal
from sim.telemetry.collector.settings import merged

log = logging.getLogger("otelcol")

TELEMETRY_DEFAULTS = {"logs": {"level": "info"}}
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


@dataclass
class Service:
    host: Host
    log_level: int = logging.INFO
    #: in start order
    extensions: list[Component] = field(default_factory=list)
    exporters: list[Component] = field(default_factory=list)
    connectors: list[Component] = field(default_factory=list)
    processors: list[Component] = field(default_factory=list)
    receivers: list[Component] = field(default_factory=list)

    def components(self) -> list[Component]:
        return [*self.extensions, *self.exporters, *self.connectors, *self.processors, *self.receivers]

    async def start(self) -> None:
        started: list[Component] = []
        try:
            for component in self.components():
                await component.start()
                started.append(component)
        except BaseException:
            for component in reversed(started):
                await component.shutdown()
            raise

    async def shutdown(self) -> None:
        for component in reversed(self.components()):
            try:
                await component.shutdown()
            except Exception:
                log.exception("shutting a component down")


def checked_settings(
    config: Config, distribution: Distribution
) -> dict[tuple[Kind, ComponentId], dict[str, Any]]:
    """Every configured component's settings with defaults filled in; ConfigError for the first refused."""
    found = {}
    for kind in KINDS:
        for component, given in config.components[kind].items():
            where = f"{kind}::{component}"
            factory = distribution.factory(kind, component)
            settings = given if factory.defaults is None else merged(where, given, factory.defaults)
            if factory.check is not None:
                factory.check(where, settings)
            found[kind, component] = settings
    return found


def telemetry_level(config: Config) -> int:
    settings = merged("service::telemetry", config.telemetry, TELEMETRY_DEFAULTS)
    level = str(settings["logs"]["level"]).lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"service::telemetry::logs::level: {level!r} is not one of {', '.join(LOG_LEVELS)}")
    return LOG_LEVELS[level]


def build(config: Config, distribution: Distribution, host: Host) -> Service:
    """The running form of `config`; ConfigError (one line) for anything the stand-in refuses."""
    settings = checked_settings(config, distribution)
    service = Service(host, telemetry_level(config))

    def make(kind: Kind, component: ComponentId, following: Mapping[Signal, Consumer]) -> Component:
        factory = distribution.factory(kind, component)
        return factory.build(component, dict(settings[kind, component]), host, following)

    for extension in config.extensions:
        built = make("extensions", extension, {})
        host.extensions[extension] = built
        service.extensions.append(built)

    exporters: dict[ComponentId, Component] = {}
    for exporter in config.used("exporters"):
        signals = _signals(config, "exporters", exporter)
        _supports(distribution.factory("exporters", exporter), "exporters", exporter, signals)
        exporters[exporter] = make("exporters", exporter, {})
        exporters[exporter].serves(f"exporters::{exporter}", signals)
    service.exporters = list(exporters.values())

    # a connector's (and a receiver's) consumers are the heads of pipelines not built yet: filled in below
    connector_outputs: dict[ComponentId, dict[Signal, Fanout]] = {}
    connectors: dict[ComponentId, Component] = {}
    for connector in config.used("connectors"):
        inputs = _signals(config, "exporters", connector)
        outputs = _signals(config, "receivers", connector)
        factory = distribution.factory("connectors", connector)
        where = f"connectors::{connector}"
        if not inputs or not outputs:
            role = "an exporter" if not inputs else "a receiver"
            raise ConfigError(f"{where}: a connector must be used as {role} in some pipeline too")
        for pair in ((i, o) for i in inputs for o in outputs):
            if pair not in factory.signals:
                raise ConfigError(f"{where}: does not connect {pair[0]} to {pair[1]}")
        connector_outputs[connector] = {signal: Fanout([]) for signal in outputs}
        connectors[connector] = make("connectors", connector, connector_outputs[connector])
    service.connectors = list(connectors.values())

    heads: dict[ComponentId, Consumer] = {}
    for pipeline in config.pipelines:
        ends = [_consumer(exporters.get(e) or connectors[e]) for e in pipeline.exporters]
        following: Consumer = Fanout(ends)
        for processor in reversed(pipeline.processors):
            _supports(
                distribution.factory("processors", processor), "processors", processor, {pipeline.signal}
            )
            built = make("processors", processor, {pipeline.signal: following})
            service.processors.insert(0, built)
            following = _consumer(built)
        heads[pipeline.id] = following

    for receiver in config.used("receivers"):
        signals = _signals(config, "receivers", receiver)
        _supports(distribution.factory("receivers", receiver), "receivers", receiver, signals)
        consumers = {signal: Fanout(_heads(config, heads, receiver, signal)) for signal in signals}
        service.receivers.append(make("receivers", receiver, consumers))

    for connector, fanouts in connector_outputs.items():
        for signal, fanout in fanouts.items():
            fanout.consumers = _heads(config, heads, connector, signal)
    return service


def _consumer(component: Component) -> Consumer:
    if not isinstance(component, Consumer):
        raise TypeError(f"{type(component).__name__} takes no data")
    return component


def _pipelines_with(config: Config, role: str, component: ComponentId) -> list[Pipeline]:
    return [p for p in config.pipelines if component in getattr(p, role)]


def _signals(config: Config, role: str, component: ComponentId) -> frozenset[Signal]:
    return frozenset(p.signal for p in _pipelines_with(config, role, component))


def _heads(
    config: Config, heads: Mapping[ComponentId, Consumer], receiver: ComponentId, signal: Signal
) -> list[Consumer]:
    return [heads[p.id] for p in _pipelines_with(config, "receivers", receiver) if p.signal == signal]


def _supports(
    factory: Factory, kind: Kind, component: ComponentId, signals: frozenset[Signal] | set[Signal]
) -> None:
    for signal in sorted(signals):
        if signal not in factory.signals:
            raise ConfigError(
                f"{kind}::{component}: does not support {signal} (it is in a {signal} pipeline)"
            )

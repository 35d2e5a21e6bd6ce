"""What a component of the stand-in is: a factory per component type (its kind, its settings' defaults,
the signals it takes), the consumers data flows through, and the host they run in.

Data flows as OTLP's own export requests (`ExportTraceServiceRequest`, ...): a receiver hands each
request it decodes to the next consumer; processors pass requests on; exporters and connectors consume
them. `consume` returning means the data was taken; `Refused` is a refusal the sender may retry (the
memory limiter's), which receivers answer with 503 / UNAVAILABLE as the collector does.

A distribution (the contrib collector, Jaeger) is a set of factories; a configuration naming a type the
distribution has no factory for is refused with one line naming it.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from sim.telemetry.collector.config import ComponentId, ConfigError, Kind, Signal
from sim.telemetry.collector.settings import ANY_HOST, Endpoint

log = logging.getLogger("otelcol")


class Refused(Exception):
    """Data a component will not take now (the sender may try again later)."""


class Consumer(abc.ABC):
    @abc.abstractmethod
    async def consume(self, signal: Signal, data: Message) -> None: ...


class Component:
    """Something started before data flows and shut down after (flushing what it holds)."""

    async def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    def serves(self, where: str, signals: frozenset[Signal]) -> None:
        """Told the signals of the pipelines it is in; ConfigError for a combination it refuses."""
        return None


class Fanout(Consumer):
    """Hands the same data to every consumer in turn (each pipeline, each exporter); the first refusal
    or error is raised after all have been tried."""

    def __init__(self, consumers: Sequence[Consumer]) -> None:
        self.consumers = list(consumers)

    async def consume(self, signal: Signal, data: Message) -> None:
        failure: Exception | None = None
        for consumer in self.consumers:
            try:
                await consumer.consume(signal, data)
            except Exception as err:  # noqa: BLE001 - the others still get the data, as in the collector
                failure = failure or err
        if failure is not None:
            raise failure


@dataclass
class Host:
    """Where the components run: the address "every interface" means here (the pod's own), and the
    extensions, for components that use one (Jaeger's storage)."""

    listen_address: str = "127.0.0.1"
    extensions: dict[ComponentId, Component] = field(default_factory=dict)

    def bind(self, endpoint: Endpoint, where: str) -> tuple[str, int]:
        """The address to listen on for a configured endpoint: every interface (`0.0.0.0`) is the pod's
        own address, as is that address named. A pod's loopback (`localhost`) cannot be had here (every
        pod shares the node's), and it would make the port unreachable from other pods anyway: refused."""
        if endpoint.host in ANY_HOST or endpoint.host == self.listen_address:
            return self.listen_address, endpoint.port
        raise ConfigError(
            f"{where}: endpoint {endpoint} listens on {endpoint.host!r}, not on the pod's interfaces "
            "(the stand-in gives a pod no loopback of its own: use 0.0.0.0)"
        )

    def extension(self, component: ComponentId, kind: type[Any], where: str) -> Any:
        found = self.extensions.get(component)
        if not isinstance(found, kind):
            raise ConfigError(f"{where}: needs the {component} extension, which the service does not start")
        return found


@dataclass(frozen=True)
class Factory:
    """A component type: its kind, the signals it handles, its settings (`defaults`: every option the
    stand-in implements, with its default), and how to check and build it."""

    kind: Kind
    type: str
    #: None: the factory's `check` reads the settings as given
    defaults: Mapping[str, Any] | None
    #: the signals it takes (`Signal`s); for a connector, (in, out) pairs of them
    signals: frozenset[Any]
    #: (id, settings, host, next consumer by signal) -> the component
    build: Callable[[ComponentId, dict[str, Any], Host, Mapping[Signal, Consumer]], Component]
    #: raises ConfigError for settings the component refuses (checked before anything starts)
    check: Callable[[str, dict[str, Any]], object] | None = None


class Distribution:
    """A collector build: its name and component factories."""

    def __init__(self, name: str, factories: Iterable[Factory]) -> None:
        self.name = name
        self.factories: dict[tuple[Kind, str], Factory] = {(f.kind, f.type): f for f in factories}

    def factory(self, kind: Kind, component: ComponentId) -> Factory:
        found = self.factories.get((kind, component.type))
        if found is None:
            known = sorted(t for k, t in self.factories if k == kind)
            raise ConfigError(
                f"{kind}::{component}: the {component.type!r} {kind[:-1]} is not implemented by the "
                f"{self.name} stand-in (it implements: {', '.join(known) or 'none'})"
            )
        return found

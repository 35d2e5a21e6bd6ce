"""Jaeger v2's own components, for the collector engine: the `jaeger_storage` extension (named storage
backends; `memory` only), the `jaeger_storage_exporter` (spans into a backend), the `jaeger_query`
extension (the query API over a backend, `query`) and `healthcheckv2` (its `/status` in v2 mode).

Options the stand-in does not implement are refused in one line: other backends, `jaeger_query`'s
gRPC API (Jaeger serves it on 16685 by default; the stand-in does not, and says so at start), a base
path, clock skew adjustment, the UI's configuration, the health check's legacy mode and gRPC service.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from quart import Quart, Response

from sim.standins.jaeger.query import create_app
from sim.standins.jaeger.store import MemoryStore
from sim.telemetry.collector import pdata
from sim.telemetry.collector.components import Component, Consumer, Factory, Host
from sim.telemetry.collector.config import ComponentId, ConfigError, Signal
from sim.telemetry.collector.servers import HttpServer
from sim.telemetry.collector.settings import ANY, duration, endpoint, number

log = logging.getLogger("jaeger")

STORAGE_DEFAULTS = {"backends": ANY, "metric_backends": ANY}
QUERY_DEFAULTS = {
    "storage": {"traces": "", "traces_archive": "", "metrics": ""},
    "http": {"endpoint": ":16686"},
    "grpc": ANY,
    "base_path": "/",
    "max_clock_skew_adjust": "0s",
    "ui": ANY,
}
HEALTH_DEFAULTS = {
    "use_v2": False,
    "http": {"endpoint": "localhost:13133", "status": {"enabled": True, "path": "/status"}},
    "grpc": ANY,
    "component_health": ANY,
}
EXPORTER_DEFAULTS = {"trace_storage": ""}


def storage_backends(where: str, settings: dict[str, Any]) -> dict[str, int]:
    """Backend name -> max traces; ConfigError for a backend that is not `memory`."""
    if settings["metric_backends"]:
        raise ConfigError(f"{where}: metric_backends are not implemented by the stand-in")
    backends = settings["backends"] or {}
    if not isinstance(backends, dict) or not backends:
        raise ConfigError(f"{where}: at least one storage backend is required")
    found = {}
    for name, backend in backends.items():
        kinds = sorted(backend or {}) if isinstance(backend, dict) else []
        if kinds != ["memory"]:
            given = ", ".join(kinds) or repr(backend)
            raise ConfigError(
                f"{where}::backends::{name}: {given}: only memory is implemented by the stand-in"
            )
        memory = backend["memory"] or {}
        extra = sorted(set(memory) - {"max_traces"})
        if extra:
            raise ConfigError(
                f"{where}::backends::{name}::memory: option {extra[0]!r} is not implemented by the stand-in"
            )
        found[str(name)] = int(
            number(f"{where}::backends::{name}::memory::max_traces", memory.get("max_traces", 0), low=1)
        )
    return found


class JaegerStorage(Component):
    def __init__(self, component: ComponentId, settings: dict[str, Any]) -> None:
        self.stores = {
            name: MemoryStore(size)
            for name, size in storage_backends(f"extensions::{component}", settings).items()
        }


def find_store(host: Host, name: str, where: str) -> MemoryStore:
    for extension in host.extensions.values():
        if isinstance(extension, JaegerStorage) and name in extension.stores:
            return extension.stores[name]
    raise ConfigError(f"{where}: no jaeger_storage extension has a backend named {name!r}")


def check_query(where: str, settings: dict[str, Any]) -> None:
    if not settings["storage"]["traces"]:
        raise ConfigError(f"{where}::storage::traces: required")
    for option in ("traces_archive", "metrics"):
        if settings["storage"][option]:
            raise ConfigError(f"{where}::storage::{option}: not implemented by the stand-in")
    if settings["grpc"] is not None:
        raise ConfigError(f"{where}::grpc: the gRPC query API is not implemented by the stand-in")
    if settings["base_path"] not in ("", "/"):
        raise ConfigError(f"{where}::base_path: not implemented by the stand-in")
    if duration(f"{where}::max_clock_skew_adjust", settings["max_clock_skew_adjust"]):
        raise ConfigError(
            f"{where}::max_clock_skew_adjust: clock skew adjustment is not implemented by the stand-in"
        )
    if settings["ui"]:
        raise ConfigError(f"{where}::ui: the Jaeger UI is not implemented by the stand-in")
    endpoint(f"{where}::http::endpoint", settings["http"]["endpoint"])


class JaegerQuery(Component):
    def __init__(self, component: ComponentId, settings: dict[str, Any], host: Host) -> None:
        self.where = f"extensions::{component}"
        check_query(self.where, settings)
        self.host = host
        self.storage = settings["storage"]["traces"]
        where = f"{self.where}::http::endpoint"
        self.address = host.bind(endpoint(where, settings["http"]["endpoint"]), where)
        self.server: HttpServer | None = None

    async def start(self) -> None:
        store = find_store(self.host, self.storage, self.where)
        self.server = HttpServer(create_app(store), self.address, "jaeger_query")
        await self.server.start()
        log.info("jaeger_query: the query API listens on %s:%d (no gRPC query API here)", *self.address)

    async def shutdown(self) -> None:
        if self.server is not None:
            await self.server.stop()


def check_health(where: str, settings: dict[str, Any]) -> None:
    if not settings["use_v2"]:
        raise ConfigError(
            f"{where}: the legacy health check (use_v2: false) is not implemented by the stand-in"
        )
    for option in ("grpc", "component_health"):
        if settings[option] is not None:
            raise ConfigError(f"{where}::{option}: not implemented by the stand-in")
    endpoint(f"{where}::http::endpoint", settings["http"]["endpoint"])


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


class HealthCheck(Component):
    """`GET <status path>`: 200 and the collector's status once every component has started."""

    def __init__(self, component: ComponentId, settings: dict[str, Any], host: Host) -> None:
        where = f"extensions::{component}"
        check_health(where, settings)
        self.path = settings["http"]["status"]["path"]
        self.enabled = settings["http"]["status"]["enabled"]
        address = host.bind(
            endpoint(f"{where}::http::endpoint", settings["http"]["endpoint"]), f"{where}::http::endpoint"
        )
        self.started = time.time()
        self.server = HttpServer(self._app(), address, "healthcheckv2")

    def _app(self) -> Quart:
        app = Quart(__name__)

        @app.get(self.path)
        async def status() -> Response:
            if not self.enabled:
                return Response("404 page not found\n", status=404)
            body = {
                "start_time": _iso(self.started),
                "healthy": True,
                "status": "StatusOK",
                "status_time": _iso(time.time()),
            }
            return Response(json.dumps(body), content_type="application/json")

        return app

    async def start(self) -> None:
        await self.server.start()

    async def shutdown(self) -> None:
        await self.server.stop()


class StorageExporter(Component, Consumer):
    def __init__(self, component: ComponentId, settings: dict[str, Any], host: Host) -> None:
        self.where = f"exporters::{component}"
        if not settings["trace_storage"]:
            raise ConfigError(f"{self.where}::trace_storage: required")
        self.host = host
        self.name = settings["trace_storage"]
        self.store: MemoryStore | None = None

    async def start(self) -> None:
        self.store = find_store(self.host, self.name, self.where)

    async def consume(self, signal: Signal, data: Message) -> None:
        assert self.store is not None, "started"
        self.store.write(pdata.resources("traces", data))


def _storage(
    component: ComponentId, settings: dict[str, Any], host: Host, following: Mapping[Signal, Consumer]
) -> Component:
    return JaegerStorage(component, settings)


def _query(
    component: ComponentId, settings: dict[str, Any], host: Host, following: Mapping[Signal, Consumer]
) -> Component:
    return JaegerQuery(component, settings, host)


def _health(
    component: ComponentId, settings: dict[str, Any], host: Host, following: Mapping[Signal, Consumer]
) -> Component:
    return HealthCheck(component, settings, host)


def _exporter(
    component: ComponentId, settings: dict[str, Any], host: Host, following: Mapping[Signal, Consumer]
) -> Component:
    return StorageExporter(component, settings, host)


FACTORIES = (
    Factory("extensions", "jaeger_storage", STORAGE_DEFAULTS, frozenset(), _storage, storage_backends),
    Factory("extensions", "jaeger_query", QUERY_DEFAULTS, frozenset(), _query, check_query),
    Factory("extensions", "healthcheckv2", HEALTH_DEFAULTS, frozenset(), _health, check_health),
    Factory("exporters", "jaeger_storage_exporter", EXPORTER_DEFAULTS, frozenset({"traces"}), _exporter),
)

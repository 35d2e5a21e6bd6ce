"""The `otlp` (gRPC) and `otlphttp` exporters: each batch sent on as an OTLP export request, through the
exporter helper's queue and retries (`sending`).

`otlp` sends to `endpoint` (`host:port`) with the signal's `Export` method, gzip-compressed unless
`compression: none`; UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, CANCELLED, DEADLINE_EXCEEDED,
OUT_OF_RANGE and DATA_LOSS are retried, any other status is permanent. `otlphttp` posts protobuf to
`<endpoint>/v1/<signal>` (or the signal's own `*_endpoint`); 429, 502, 503 and 504 and connection errors
are retried. Only plain-text connections are implemented (`tls: {insecure: true}` for `otlp`, `http://`
for `otlphttp`).

The host name is resolved by Python's resolver, which in a pod of the local cloud knows the cluster's
Service names (gRPC's own resolver, in C, would not), and gRPC dials the address it found.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from sim.telemetry.collector.components import Component, Consumer, Factory, Host
from sim.telemetry.collector.config import SIGNALS, ComponentId, ConfigError, Signal
from sim.telemetry.collector.sending import QUEUE_DEFAULTS, RETRY_DEFAULTS, Permanent, QueuedSender
from sim.telemetry.collector.settings import ANY, duration

log = logging.getLogger("otelcol.otlpexporter")

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.DATA_LOSS,
    }
)
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
STUBS: dict[str, Any] = {
    "traces": trace_service_pb2_grpc.TraceServiceStub,
    "metrics": metrics_service_pb2_grpc.MetricsServiceStub,
    "logs": logs_service_pb2_grpc.LogsServiceStub,
}
GRPC_DEFAULTS = {
    "endpoint": "",
    "tls": {"insecure": False, "insecure_skip_verify": False},
    "compression": "gzip",
    "headers": ANY,
    "timeout": "5s",
    "sending_queue": QUEUE_DEFAULTS,
    "retry_on_failure": RETRY_DEFAULTS,
}
HTTP_DEFAULTS = {
    "endpoint": "",
    "traces_endpoint": "",
    "metrics_endpoint": "",
    "logs_endpoint": "",
    "compression": "gzip",
    "headers": ANY,
    "timeout": "30s",
    "sending_queue": QUEUE_DEFAULTS,
    "retry_on_failure": RETRY_DEFAULTS,
}


def _compression(where: str, value: Any) -> bool:
    if value in ("gzip",):
        return True
    if value in ("none", "", None):
        return False
    raise ConfigError(f"{where}::compression: {value!r} is not implemented by the stand-in (gzip, none)")


def grpc_target(where: str, settings: dict[str, Any]) -> tuple[str, int]:
    if not settings["tls"]["insecure"]:
        raise ConfigError(f"{where}: TLS is not implemented by the stand-in (set tls: {{insecure: true}})")
    _compression(where, settings["compression"])
    duration(f"{where}::timeout", settings["timeout"])
    text = str(settings["endpoint"] or "")
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme == "https":
            raise ConfigError(f"{where}::endpoint: TLS (https) is not implemented by the stand-in")
        text = rest
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{where}::endpoint: {settings['endpoint']!r} is not a host:port")
    return host, int(port)


def http_urls(where: str, settings: dict[str, Any]) -> dict[Signal, str]:
    _compression(where, settings["compression"])
    duration(f"{where}::timeout", settings["timeout"])
    urls: dict[Signal, str] = {}
    for signal in SIGNALS:
        own = settings[f"{signal}_endpoint"]
        url = own or (f"{str(settings['endpoint']).rstrip('/')}/v1/{signal}" if settings["endpoint"] else "")
        if not url:
            raise ConfigError(f"{where}: set endpoint (or {signal}_endpoint)")
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(
                f"{where}: {url!r} is not an http:// URL (TLS is not implemented by the stand-in)"
            )
        urls[signal] = url
    return urls


async def _address(host: str, port: int) -> str:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return str(infos[0][4][0])


class OtlpGrpcExporter(Component, Consumer):
    def __init__(self, component: ComponentId, settings: dict[str, Any]) -> None:
        where = f"exporters::{component}"
        self.host, self.port = grpc_target(where, settings)
        self.gzip = _compression(where, settings["compression"])
        self.timeout = duration(f"{where}::timeout", settings["timeout"])
        self.metadata = tuple((str(k).lower(), str(v)) for k, v in (settings["headers"] or {}).items())
        self.sender = QueuedSender(
            f"exporter {component}", settings["sending_queue"], settings["retry_on_failure"], self._send
        )
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def start(self) -> None:
        await self.sender.start()

    async def shutdown(self) -> None:
        await self.sender.shutdown()
        for channel in self._channels.values():
            await channel.close()

    async def consume(self, signal: Signal, data: Message) -> None:
        await self.sender.submit(signal, data)

    async def _send(self, signal: Signal, data: Message) -> None:
        address = await _address(self.host, self.port)
        channel = self._channels.get(address)
        if channel is None:
            options = [("grpc.default_authority", f"{self.host}:{self.port}")]
            channel = grpc.aio.insecure_channel(f"{address}:{self.port}", options=options)
            self._channels[address] = channel
        stub = STUBS[signal](channel)
        compression = grpc.Compression.Gzip if self.gzip else grpc.Compression.NoCompression
        try:
            await stub.Export(data, timeout=self.timeout, metadata=self.metadata, compression=compression)
        except grpc.aio.AioRpcError as err:
            message = f"rpc error: code = {err.code().name} desc = {err.details()}"
            if err.code() in RETRYABLE:
                raise ConnectionError(message) from None
            raise Permanent(message) from None


class OtlpHttpExporter(Component, Consumer):
    def __init__(self, component: ComponentId, settings: dict[str, Any]) -> None:
        where = f"exporters::{component}"
        self.urls = http_urls(where, settings)
        self.gzip = _compression(where, settings["compression"])
        self.headers = {str(k): str(v) for k, v in (settings["headers"] or {}).items()}
        self.timeout = duration(f"{where}::timeout", settings["timeout"])
        self.sender = QueuedSender(
            f"exporter {component}", settings["sending_queue"], settings["retry_on_failure"], self._send
        )
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._http = httpx.AsyncClient(timeout=self.timeout)
        await self.sender.start()

    async def shutdown(self) -> None:
        await self.sender.shutdown()
        if self._http is not None:
            await self._http.aclose()

    async def consume(self, signal: Signal, data: Message) -> None:
        await self.sender.submit(signal, data)

    async def _send(self, signal: Signal, data: Message) -> None:
        assert self._http is not None, "started"
        body = data.SerializeToString()
        headers = {**self.headers, "Content-Type": "application/x-protobuf"}
        if self.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        response = await self._http.post(self.urls[signal], content=body, headers=headers)
        if response.is_success:
            return
        message = (
            f"error exporting items, request to {self.urls[signal]} responded with "
            f"HTTP Status Code {response.status_code}"
        )
        if response.status_code in RETRYABLE_HTTP:
            raise ConnectionError(message)
        raise Permanent(message)


def _build_grpc(
    component: ComponentId, settings: dict[str, Any], host: Host, following: Mapping[Signal, Consumer]
) -> Component:
    return OtlpGrpcExporter(component, settings)


def _build_http(
    component: ComponentId, settings: dict[str, Any], host: Host, following: Mapping[Signal, Consumer]
) -> Component:
    return OtlpHttpExporter(component, settings)


GRPC_FACTORY = Factory("exporters", "otlp", GRPC_DEFAULTS, frozenset(SIGNALS), _build_grpc, grpc_target)
HTTP_FACTORY = Factory("exporters", "otlphttp", HTTP_DEFAULTS, frozenset(SIGNALS), _build_http, http_urls)

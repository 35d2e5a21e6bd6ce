"""The `otlp` receiver: OTLP over HTTP (`POST /v1/traces|metrics|logs`, protobuf or JSON, gzip or
deflate) and over gRPC (the three `Export` services), each protocol on only when the config names it.

An export is decoded into its request message and handed to the pipelines of its signal; the answer
waits for them (up to the batch processor, which takes the data at once), so a memory limiter's refusal
reaches the client as HTTP 503 / gRPC UNAVAILABLE, which OTLP exporters retry. Bad bodies are 400, an
unknown media type 415, other methods 405, a signal no pipeline takes 404, each with a `google.rpc.Status`
body as OTLP/HTTP prescribes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from quart import Quart, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from sim.telemetry import otlp
from sim.telemetry.collector.components import Component, Consumer, Factory, Host, Refused
from sim.telemetry.collector.config import SIGNALS, ComponentId, ConfigError, Signal
from sim.telemetry.collector.servers import HttpServer, ListenError
from sim.telemetry.collector.settings import endpoint
from sim.telemetry.otlp import OtlpError, WireFormat

log = logging.getLogger("otelcol.otlpreceiver")

MAX_BODY_BYTES = 20 * 1024 * 1024  # confighttp's max_request_body_size default
PROTOCOL_OPTIONS = ("endpoint",)


class OtlpReceiver(Component):
    def __init__(
        self,
        component: ComponentId,
        settings: dict[str, Any],
        host: Host,
        consumers: Mapping[Signal, Consumer],
        defaults: Mapping[str, str],
    ) -> None:
        self.id = component
        self.consumers = dict(consumers)
        protocols = protocol_settings(f"receivers::{component}", settings, defaults)
        self.http: HttpServer | None = None
        self.grpc_address: tuple[str, int] | None = None
        self._grpc: grpc.aio.Server | None = None
        if "http" in protocols:
            where = f"receivers::{component}::protocols::http::endpoint"
            address = host.bind(endpoint(where, protocols["http"]), where)
            self.http = HttpServer(http_app(self.consumers), address, f"receiver {component} (HTTP)")
        if "grpc" in protocols:
            where = f"receivers::{component}::protocols::grpc::endpoint"
            self.grpc_address = host.bind(endpoint(where, protocols["grpc"]), where)

    async def start(self) -> None:
        if self.grpc_address is not None:
            self._grpc = grpc_server(self.consumers)
            host, port = self.grpc_address
            try:
                bound = self._grpc.add_insecure_port(f"{host}:{port}")
            except RuntimeError as err:
                raise ListenError(
                    f"receiver {self.id} (gRPC) cannot listen on {host}:{port}: {err}"
                ) from None
            if not bound:
                raise ListenError(f"receiver {self.id} (gRPC) cannot listen on {host}:{port}")
            await self._grpc.start()
        if self.http is not None:
            await self.http.start()

    async def shutdown(self) -> None:
        if self.http is not None:
            await self.http.stop()
        if self._grpc is not None:
            await self._grpc.stop(grace=2)


def protocol_settings(where: str, settings: dict[str, Any], defaults: Mapping[str, str]) -> dict[str, str]:
    """The endpoint of each protocol the settings turn on (`grpc:` alone turns it on, at its default)."""
    protocols = settings.get("protocols")
    if not isinstance(protocols, dict) or not protocols:
        raise ConfigError(f"{where}: must specify at least one protocol (grpc, http) under protocols")
    unknown = sorted(set(settings) - {"protocols"}) or sorted(set(protocols) - set(defaults))
    if unknown:
        raise ConfigError(f"{where}: option {unknown[0]!r} is not implemented by the stand-in")
    endpoints = {}
    for name, given in protocols.items():
        given = given or {}
        if not isinstance(given, dict):
            raise ConfigError(f"{where}::protocols::{name}: must be a mapping")
        extra = sorted(set(given) - set(PROTOCOL_OPTIONS))
        if extra:
            raise ConfigError(
                f"{where}::protocols::{name}: option {extra[0]!r} is not implemented by the stand-in"
            )
        endpoints[name] = str(given.get("endpoint") or defaults[name])
    return endpoints


def factory(defaults: Mapping[str, str]) -> Factory:
    """The otlp receiver of a distribution whose default endpoints are `defaults` (by protocol)."""

    def build(
        component: ComponentId, settings: dict[str, Any], host: Host, consumers: Mapping[Signal, Consumer]
    ) -> Component:
        return OtlpReceiver(component, settings, host, consumers, defaults)

    def check(where: str, settings: dict[str, Any]) -> None:
        protocol_settings(where, settings, defaults)

    # no defaults: `protocol_settings` reads them (a protocol is on when named, even with no settings)
    return Factory("receivers", "otlp", None, frozenset(SIGNALS), build, check)


def http_app(consumers: Mapping[Signal, Consumer]) -> Quart:
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.route("/v1/<signal>", methods=["GET", "PUT", "PATCH", "DELETE", "POST"])
    async def export(signal: str) -> Response:
        if signal not in SIGNALS or signal not in consumers:
            return _status(404, f"404 page not found: {request.path}", "json")
        if request.method != "POST":
            return _status(405, f"{request.method} method not allowed, supported: [POST]", "json")
        fmt: WireFormat = "json"
        try:
            fmt = otlp.wire_format(request.headers.get("Content-Type"))
            try:
                body = await request.get_data(cache=False, as_text=False, parse_form_data=False)
            except RequestEntityTooLarge as err:
                raise OtlpError(400, f"request body is larger than {MAX_BODY_BYTES} bytes") from err
            encoding = request.headers.get("Content-Encoding")
            message = await asyncio.to_thread(_decode, signal, body, encoding, fmt)  # type: ignore[arg-type]
            await consumers[signal].consume(signal, message)  # type: ignore[index, arg-type]
        except OtlpError as err:
            return _status(err.status, err.message, fmt)
        except Refused as err:
            return _status(503, str(err), fmt)
        except Exception as err:  # noqa: BLE001 - a pipeline's failure is the client's 500, with its reason
            log.warning("receiver: %s export failed: %s", signal, err)
            return _status(500, str(err), fmt)
        return Response(otlp.export_response(signal, fmt), content_type=otlp.MEDIA_TYPES[fmt])  # type: ignore[arg-type]

    return app


def _decode(signal: Signal, body: bytes, encoding: str | None, fmt: WireFormat) -> Any:
    return otlp.parse_request(signal, otlp.decompress(body, encoding, MAX_BODY_BYTES), fmt)


def _status(status: int, message: str, fmt: WireFormat) -> Response:
    return Response(otlp.error_body(fmt, status, message), status=status, content_type=otlp.MEDIA_TYPES[fmt])


def grpc_server(consumers: Mapping[Signal, Consumer]) -> grpc.aio.Server:
    server = grpc.aio.server()
    if "traces" in consumers:
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(consumers["traces"]), server)  # type: ignore[no-untyped-call]
    if "metrics" in consumers:
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(consumers["metrics"]), server)  # type: ignore[no-untyped-call]
    if "logs" in consumers:
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(consumers["logs"]), server)  # type: ignore[no-untyped-call]
    return server


async def _export(consumer: Consumer, signal: Signal, data: Any, context: grpc.aio.ServicerContext) -> None:
    try:
        await consumer.consume(signal, data)
    except Refused as err:
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(err))


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer

    async def Export(self, request: Any, context: Any) -> Any:
        await _export(self.consumer, "traces", request, context)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer

    async def Export(self, request: Any, context: Any) -> Any:
        await _export(self.consumer, "metrics", request, context)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer

    async def Export(self, request: Any, context: Any) -> Any:
        await _export(self.consumer, "logs", request, context)
        return logs_service_pb2.ExportLogsServiceResponse()

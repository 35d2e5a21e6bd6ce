"""The receiver's HTTP side: OTLP/HTTP export endpoints and a JSON query API over one `TelemetryStore`.

Exports are decoded and stored in a worker thread so a large batch does not stall queries. Errors on
`/v1/*` are `google.rpc.Status` bodies in the request's format, as OTLP/HTTP clients expect; errors on the
query API are `{"error", "status", "fields"}` like the shop's services, naming the bad parameter.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from typing import Any, get_args

from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sim.telemetry import otlp, views
from sim.telemetry.otlp import OtlpError, Signal, WireFormat
from sim.telemetry.store import SPAN_KINDS, TelemetryStore

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
ATTRIBUTE_PREFIX = "attr."
SIGNALS: tuple[Signal, ...] = get_args(Signal)
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_DIGITS = re.compile(r"[0-9]{1,7}")


class BadParameter(Exception):
    """A query parameter the API cannot take: a 400 naming it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def create_app(store: TelemetryStore | None = None, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Quart:
    """The receiver's app; `max_body_bytes` caps an export body, compressed and decompressed alike."""
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    telemetry = store if store is not None else TelemetryStore()

    @app.errorhandler(BadParameter)
    async def bad_parameter(error: BadParameter) -> Response:
        return _error(
            400,
            f"invalid query parameter {error.name}: {error.message}",
            [{"field": error.name, "message": error.message}],
        )

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if request.path.startswith("/v1/"):
            return _status(status, error.description or error.name, "json")
        return _error(status, error.description or error.name)

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.post("/v1/<signal>")
    async def export(signal: str) -> Response:
        if signal not in SIGNALS:
            return _status(
                404, f"no OTLP signal {signal!r}: POST to /v1/traces, /v1/metrics or /v1/logs", "json"
            )
        fmt: WireFormat = "json"
        try:
            fmt = otlp.wire_format(request.headers.get("Content-Type"))
            try:
                body = await request.get_data(cache=False, as_text=False, parse_form_data=False)
            except RequestEntityTooLarge as err:
                raise OtlpError(413, f"body is larger than {max_body_bytes} bytes") from err
            encoding = request.headers.get("Content-Encoding")
            rejected, reason = await asyncio.to_thread(
                _ingest, telemetry, signal, fmt, body, encoding, max_body_bytes
            )
        except OtlpError as err:
            log.warning("refused %s export (%d): %s", signal, err.status, err.message)
            return _status(err.status, err.message, fmt)
        if rejected:
            log.warning("%s export: %s", signal, reason)
        return Response(
            otlp.export_response(signal, fmt, rejected, reason), content_type=otlp.MEDIA_TYPES[fmt]
        )

    @app.get("/api/traces/<trace_id>")
    async def get_trace(trace_id: str) -> Response:
        _check_parameters(())
        trace_id = _hex_trace_id("trace_id", trace_id)
        spans = telemetry.trace(trace_id)
        if not spans:
            return _error(404, f"trace {trace_id} not found")
        return _json({"trace_id": trace_id, "spans": [views.span_json(s) for s in spans]})

    @app.get("/api/spans")
    async def get_spans() -> Response:
        _check_parameters(("service", "name", "trace_id", "kind", "limit"), attributes=True)
        trace_id = _text("trace_id")
        spans = telemetry.spans(
            service=_text("service"),
            name=_text("name"),
            trace_id=None if trace_id is None else _hex_trace_id("trace_id", trace_id),
            kind=_kind(),
            attributes=_attributes(),
            limit=_limit(),
        )
        return _json({"spans": [views.span_json(s) for s in spans]})

    @app.get("/api/services")
    async def get_services() -> Response:
        _check_parameters(())
        return _json({"services": telemetry.services()})

    @app.get("/api/service-graph")
    async def get_service_graph() -> Response:
        _check_parameters(())
        return _json({"edges": [views.edge_json(e) for e in telemetry.service_graph()]})

    @app.get("/api/metrics")
    async def get_metrics() -> Response:
        _check_parameters(("service", "name"))
        metrics = telemetry.metrics(service=_text("service"), name=_text("name"))
        return _json({"metrics": [views.metric_json(m) for m in metrics]})

    @app.get("/api/logs")
    async def get_logs() -> Response:
        _check_parameters(("service", "trace_id", "limit"))
        trace_id = _text("trace_id")
        records = telemetry.logs(
            service=_text("service"),
            trace_id=None if trace_id is None else _hex_trace_id("trace_id", trace_id),
            limit=_limit(),
        )
        return _json({"logs": [views.log_json(r) for r in records]})

    @app.get("/api/stats")
    async def get_stats() -> Response:
        _check_parameters(())
        stats = {signal: views.stats_json(s) for signal, s in telemetry.stats().items()}
        return _json({**stats, "services": len(telemetry.services())})

    @app.delete("/api/data")
    async def delete_data() -> Response:
        _check_parameters(())
        telemetry.clear()
        return Response(b"", status=204)

    return app


def _ingest(
    store: TelemetryStore, signal: Signal, fmt: WireFormat, body: bytes, encoding: str | None, limit: int
) -> tuple[int, str]:
    """Decode one export request and store its records; return how many were rejected and why."""
    raw = otlp.decompress(body, encoding, limit)
    if signal == "traces":
        spans = otlp.decode_traces(raw, fmt)
        store.add_spans(spans.records, spans.rejected)
        return spans.rejected, spans.reason
    if signal == "metrics":
        points = otlp.decode_metrics(raw, fmt)
        store.add_metric_points(points.records, points.rejected)
        return points.rejected, points.reason
    logs = otlp.decode_logs(raw, fmt)
    store.add_logs(logs.records, logs.rejected)
    return logs.rejected, logs.reason


def _json(document: Any, status: int = 200) -> Response:
    return Response(views.dumps(document), status=status, content_type="application/json")


def _error(status: int, message: str, fields: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"error": message, "status": status}
    if fields:
        body["fields"] = fields
    return _json(body, status)


def _status(status: int, message: str, fmt: WireFormat) -> Response:
    return Response(otlp.error_body(fmt, status, message), status=status, content_type=otlp.MEDIA_TYPES[fmt])


def _check_parameters(allowed: Iterable[str], *, attributes: bool = False) -> None:
    """Refuse parameters the endpoint does not know, so a misspelt filter is not silently ignored."""
    known = set(allowed)
    for name in request.args:
        if name in known or (attributes and name.startswith(ATTRIBUTE_PREFIX)):
            continue
        expected = ", ".join(sorted(known) + ([f"{ATTRIBUTE_PREFIX}<key>"] if attributes else [])) or "none"
        raise BadParameter(name, f"unknown parameter (expected: {expected})")


def _text(name: str) -> str | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not value:
        raise BadParameter(name, "must not be empty")
    return value


def _hex_trace_id(name: str, value: str) -> str:
    trace_id = value.lower()
    if not _TRACE_ID.fullmatch(trace_id):
        raise BadParameter(name, f"{value!r} is not a trace id (32 hex digits)")
    return trace_id


def _kind() -> str | None:
    value = _text("kind")
    if value is None:
        return None
    kind = value.upper().removeprefix("SPAN_KIND_")
    if kind not in SPAN_KINDS:
        raise BadParameter("kind", f"{value!r} is not one of {', '.join(SPAN_KINDS)}")
    return kind


def _limit() -> int:
    value = request.args.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_LIMIT:
        raise BadParameter("limit", f"{value!r} is not a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def _attributes() -> dict[str, str]:
    wanted = {}
    for name, value in request.args.items():
        if name.startswith(ATTRIBUTE_PREFIX):
            key = name.removeprefix(ATTRIBUTE_PREFIX)
            if not key:
                raise BadParameter(name, "needs an attribute key after 'attr.'")
            wanted[key] = value
    return wanted

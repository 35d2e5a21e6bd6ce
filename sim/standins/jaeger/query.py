"""The `jaeger_query` extension's HTTP API (Jaeger 2.15's `/api`, what the Jaeger UI and Grafana's Jaeger
data source call): `/api/services`, `/api/operations?service=&spanKind=`,
`/api/services/{service}/operations`, `/api/traces?service=&operation=&tag=k:v&tags={json}&start=&end=
&minDuration=&maxDuration=&limit=` (times in microseconds, durations as `250ms`; `start` defaults to two
days ago, `limit` to 100), `/api/traces?traceID=...`, `/api/traces/{traceID}` and
`/api/dependencies?endTs=&lookback=` (milliseconds; a day back by default).

Answers are Jaeger's structured response, `{"data", "total", "limit", "offset", "errors"}`; an error is
that document with `errors: [{"code", "msg"}]` and the status, as text/plain (Go's `http.Error`). The
metrics endpoints answer as Jaeger does with no metrics storage (501); the UI itself is not served.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from quart import Quart, Response, request

from sim.standins.jaeger.store import MemoryStore, StorageError, TraceQuery
from sim.standins.jaeger.uimodel import trace_json
from sim.telemetry.collector.config import ConfigError
from sim.telemetry.collector.settings import duration

DEFAULT_LIMIT = 100
TRACE_LOOKBACK_NS = 2 * 24 * 3600 * 10**9
DEPENDENCY_LOOKBACK_MS = 24 * 3600 * 1000
METRICS_DISABLED = "metrics querying is currently disabled"
_HEX = re.compile(r"[0-9a-fA-F]+")


class BadRequest(Exception):
    """A parameter the API cannot take: 400 with the message."""


def structured(data: Any, total: int = 0, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}


def trace_id(text: str) -> bytes:
    """A trace id as Jaeger's model parses it: up to 32 hex digits, the high half first."""
    if len(text) > 32:
        raise BadRequest(f"TraceID cannot be longer than 32 hex characters: {text}")
    if not _HEX.fullmatch(text):
        raise BadRequest(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    return int(text, 16).to_bytes(16, "big")


def _integer(name: str, default: int) -> int:
    value = request.args.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(
            f"unable to parse param '{name}': strconv.ParseInt: parsing \"{value}\": invalid syntax"
        ) from None


def _duration(name: str) -> int:
    value = request.args.get(name, "")
    if not value:
        return 0
    try:
        return int(duration(name, value) * 1e9)
    except ConfigError:
        raise BadRequest(f"unable to parse param '{name}': time: invalid duration \"{value}\"") from None


def _tags() -> dict[str, str]:
    tags: dict[str, str] = {}
    for text in request.args.getlist("tag"):
        key, colon, value = text.partition(":")
        if not colon:
            raise BadRequest(f"malformed 'tag' parameter, expecting key:value, received: {text}")
        tags[key] = value
    for text in request.args.getlist("tags"):
        try:
            parsed = json.loads(text)
        except ValueError as err:
            raise BadRequest(f"malformed 'tags' parameter, cannot unmarshal JSON: {err}") from None
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise BadRequest("malformed 'tags' parameter, cannot unmarshal JSON: values must be strings")
        tags |= parsed
    return tags


def create_app(store: MemoryStore) -> Quart:
    app = Quart(__name__)

    def answer(document: Any, status: int = 200) -> Response:
        return Response(json.dumps(document), status=status, content_type="application/json")

    def failure(status: int, message: str) -> Response:
        body = json.dumps(structured(None, errors=[{"code": status, "msg": message}])) + "\n"
        return Response(body, status=status, content_type="text/plain; charset=utf-8")

    @app.errorhandler(BadRequest)
    async def bad_request(error: BadRequest) -> Response:
        return failure(400, str(error))

    @app.errorhandler(StorageError)
    async def storage_error(error: StorageError) -> Response:
        return failure(500, str(error))

    @app.get("/")
    async def home() -> Response:
        text = "Jaeger (local stand-in): the UI is not served here; the query API is under /api/.\n"
        return Response(text, content_type="text/plain; charset=utf-8")

    @app.get("/api/services")
    async def services() -> Response:
        names = sorted(store.services)
        return answer(structured(names, len(names)))

    @app.get("/api/operations")
    async def operations() -> Response:
        service = request.args.get("service", "")
        if not service:
            raise BadRequest("parameter 'service' is required")
        kind = request.args.get("spanKind", "")
        found = sorted(o for o in store.operations.get(service, set()) if not kind or o[1] == kind)
        data = [{"name": name, "spanKind": span_kind} for name, span_kind in found]
        return answer(structured(data, len(data)))

    @app.get("/api/services/<path:service>/operations")
    async def service_operations(service: str) -> Response:
        names = sorted({name for name, _ in store.operations.get(service, set())})
        return answer(structured(names or None, len(names)))

    @app.get("/api/traces/<trace>")
    async def get_trace(trace: str) -> Response:
        stored = store.trace(trace_id(trace))
        if stored is None:
            return failure(404, "trace not found")
        return answer(structured([await asyncio.to_thread(trace_json, stored)]))

    @app.get("/api/traces")
    async def search() -> Response:
        ids = [trace_id(t) for t in request.args.getlist("traceID")]
        if ids:
            found = [store.trace(i) for i in ids]
            errors = [
                {"msg": "trace not found", "traceID": t}
                for t, s in zip(request.args.getlist("traceID"), found, strict=True)
                if s is None
            ]
            data = await asyncio.to_thread(lambda: [trace_json(s) for s in found if s is not None])
            return answer(structured(data, errors=errors or None))
        now = time.time_ns()
        query = TraceQuery(
            service=request.args.get("service", ""),
            operation=request.args.get("operation", ""),
            tags=_tags(),
            start_min=_integer("start", (now - TRACE_LOOKBACK_NS) // 1000) * 1000,
            start_max=_integer("end", now // 1000) * 1000,
            duration_min=_duration("minDuration"),
            duration_max=_duration("maxDuration"),
            depth=_integer("limit", DEFAULT_LIMIT),
        )
        if not query.service:
            raise BadRequest("parameter 'service' is required")
        if query.duration_min and query.duration_max and query.duration_max < query.duration_min:
            raise BadRequest("'maxDuration' should be greater than 'minDuration'")
        traces = await asyncio.to_thread(store.find, query)
        data = await asyncio.to_thread(lambda: [trace_json(s) for s in traces])
        return answer(structured(data))

    @app.get("/api/dependencies")
    async def dependencies() -> Response:
        end_ms = _integer("endTs", time.time_ns() // 1_000_000)
        lookback_ms = _integer("lookback", DEPENDENCY_LOOKBACK_MS)
        service = request.args.get("service", "")
        calls = await asyncio.to_thread(store.dependencies, (end_ms - lookback_ms) * 10**6, end_ms * 10**6)
        data = [
            {"parent": parent, "child": child, "callCount": count}
            for (parent, child), count in sorted(calls.items())
            if not service or service in (parent, child)
        ]
        return answer(structured(data))

    @app.get("/api/metrics/<path:which>")
    async def metrics(which: str) -> Response:
        return failure(501, METRICS_DISABLED)

    return app

"""The Quart application every service is built on.

`ServiceApp` adds what all nine services share: JSON errors that name the bad field, JSON bodies of a
bounded size read strictly (see `bodies`), 503s with a `Retry-After` for what is `Unavailable` for now,
`/healthz`, `/readyz` (running the service's own readiness checks), `/metrics`, `/drain` (lame-duck
draining for a preStop hook, see `draining`), an OpenAPI document at `/openapi.json` that lists every
answer (see `openapi`), traced requests named by their route template, the build's version in every
response (`X-Service-Version`), feature flags loaded before serving, and resources (clients, consumers)
closed in reverse order when the service stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar, cast

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, ValidationError
from quart import Quart, Response, current_app, jsonify, request
from quart_schema import QuartSchema, RequestSchemaValidationError, hide, validate_querystring
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from services.common.bodies import MAX_BODY_BYTES, BodyRejected, JsonRequest, NotJson
from services.common.config import MAX_DRAIN_SECONDS, ServiceSettings
from services.common.draining import Drain
from services.common.flags import FeatureFlags
from services.common.http import UpstreamRejected, UpstreamUnavailable
from services.common.openapi import ErrorBody, IdConverter, ServiceOpenAPI
from services.common.telemetry import setup_telemetry
from services.common.unavailable import Unavailable

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]
R = TypeVar("R")

READINESS_TIMEOUT_SECONDS = 2.0
# Probes, scrapes and drains are not traced (nor counted in the request metrics, where a drain's seconds
# would pass for slow requests): a regex matched against the full URL (commas separate regexes).
UNTRACED_URLS = r"^https?://[^/]+/(healthz|readyz|metrics|drain)/?(\?.*)?$"
VERSION_HEADER = "X-Service-Version"
# HTTP/2 has no Connection header (a draining HTTP/2 connection would be ended by GOAWAY instead).
CLOSABLE_HTTP_VERSIONS = frozenset({"1.0", "1.1"})


def error_response(status: int, message: str, fields: list[dict[str, str]] | None = None) -> Response:
    body = ErrorBody(error=message, status=status, fields=fields)
    response = jsonify(body.model_dump(exclude_none=True))
    response.status_code = status
    return response


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """Pydantic's errors as `{"field": "items.0.quantity", "message": ...}` entries."""
    return [
        {"field": ".".join(str(part) for part in e["loc"]) or "body", "message": e["msg"]}
        for e in error.errors()
    ]


class DrainQuery(BaseModel):
    """`GET /drain?seconds=N`: how long to hold the caller (a preStop hook) before it may send SIGTERM."""

    seconds: float | None = Field(default=None, ge=0, le=MAX_DRAIN_SECONDS)


class ServiceApp(Quart):
    """A Quart app with the settings, flags, readiness checks and resources of one service."""

    request_class = JsonRequest

    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        *,
        title: str,
        version: str = "1",
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        super().__init__(name)
        self.config["MAX_CONTENT_LENGTH"] = max_body_bytes
        self.url_map.converters["id"] = IdConverter
        self.service_name = name
        self.settings = settings
        self.flags = FeatureFlags.from_file(settings.flags_file, name)
        self.readiness_checks: dict[str, ReadinessCheck] = {}
        self.drain = Drain()
        self._ready: bool | None = None
        self._resources = AsyncExitStack()

        setup_telemetry(name, settings.log_level, settings.service_version)
        QuartSchema(
            self,
            openapi_path="/openapi.json",
            swagger_ui_path="/docs",
            redoc_ui_path=None,
            scalar_ui_path=None,
            info={"title": title, "version": version},
            openapi_provider_class=ServiceOpenAPI,
        )
        self._register_error_handlers()
        self._register_health_routes()
        self._register_drain_route()
        self.after_request(self._stamp_response)
        self.after_serving(self._resources.aclose)
        self.after_serving(self._stop_flags)
        self.before_request(_name_span_by_route)
        self.asgi_app = OpenTelemetryMiddleware(  # type: ignore[method-assign,assignment]
            self.asgi_app,
            excluded_urls=UNTRACED_URLS,
            default_span_details=_method_only,
            exclude_spans=["receive", "send"],
        )

    def readiness_check(self, name: str) -> Callable[[ReadinessCheck], ReadinessCheck]:
        """Register a check that `/readyz` runs; it raises (with a reason) when not ready."""

        def register(check: ReadinessCheck) -> ReadinessCheck:
            self.readiness_checks[name] = check
            return check

        return register

    async def enter(self, resource: AbstractAsyncContextManager[R]) -> R:
        """Open `resource` now and close it when the service stops, after in-flight requests."""
        return await self._resources.enter_async_context(resource)

    def on_stop(self, callback: Callable[[], Awaitable[Any]]) -> None:
        self._resources.push_async_callback(callback)

    async def _stop_flags(self) -> None:
        self.flags.shutdown()

    async def _stamp_response(self, response: Response) -> Response:
        """Every response names the build that made it and, while draining or unready, closes its
        connection: the Service sends an unready pod no new connections but lets the ones it has go on,
        so a caller reusing a pooled keep-alive connection would keep the pod in its service regardless.
        Closed, the caller's next request goes through the Service to a ready pod, or fails if none is."""
        response.headers[VERSION_HEADER] = self.settings.service_version
        shedding = self.drain.draining or self._ready is False
        if shedding and request.http_version in CLOSABLE_HTTP_VERSIONS:
            response.headers["Connection"] = "close"
        return response

    def _register_error_handlers(self) -> None:
        @self.errorhandler(RequestSchemaValidationError)
        async def invalid_request(error: RequestSchemaValidationError) -> Response:
            cause = error.validation_error
            if isinstance(cause, ValidationError):
                fields = field_errors(cause)
                names = ", ".join(f["field"] for f in fields)
                return error_response(400, f"invalid request: {names}", fields)
            return error_response(400, "invalid request: body must be a JSON object")

        @self.errorhandler(BodyRejected)
        @self.errorhandler(NotJson)  # a 415: Quart looks its handlers up by status code first
        async def unreadable_body(error: BodyRejected) -> Response:
            message = error.description or error.name
            return error_response(error.code or 400, message, [{"field": error.field, "message": message}])

        @self.errorhandler(RequestEntityTooLarge)
        async def body_too_large(error: RequestEntityTooLarge) -> Response:
            message = f"the body is larger than {self.config['MAX_CONTENT_LENGTH']} bytes"
            return error_response(413, message, [{"field": "body", "message": message}])

        @self.errorhandler(HTTPException)
        async def http_error(error: HTTPException) -> Response:
            return error_response(error.code or 500, error.description or error.name)

        @self.errorhandler(UpstreamUnavailable)
        async def upstream_unavailable(error: UpstreamUnavailable) -> Response:
            log.warning("upstream unavailable: %s", error)
            return error_response(503, str(error))

        @self.errorhandler(Unavailable)
        async def unavailable(error: Unavailable) -> Response:
            log.warning("answering 503: %s", error)
            response = error_response(503, str(error))
            response.headers["Retry-After"] = str(error.retry_after)
            return response

        @self.errorhandler(UpstreamRejected)
        async def upstream_rejected(error: UpstreamRejected) -> Response:
            log.warning("upstream rejected a request: %s", error)
            return error_response(502, str(error))

    def _register_health_routes(self) -> None:
        @self.get("/healthz")
        @hide
        async def healthz() -> dict[str, str]:
            return {"status": "ok", "version": self.settings.service_version}

        @self.get("/readyz")
        @hide
        async def readyz() -> tuple[dict[str, Any], int]:
            if self.drain.draining:
                return {"status": "unready", "reason": "draining"}, 503
            results = await asyncio.gather(*(_run_check(check) for check in self.readiness_checks.values()))
            checks = dict(zip(self.readiness_checks, results, strict=True))
            ready = all(result == "ok" for result in checks.values())
            self._log_readiness(ready, checks)
            return {"status": "ready" if ready else "unready", "checks": checks}, 200 if ready else 503

        @self.get("/metrics")
        @hide
        async def metrics() -> Response:
            return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    def _register_drain_route(self) -> None:
        @self.get("/drain")
        @hide
        @validate_querystring(DrainQuery)
        async def drain(query_args: DrainQuery) -> dict[str, Any]:
            """Drain (a second call while draining only waits), answering after the seconds asked for
            (`DRAIN_SECONDS` by default) or as soon as the service starts stopping."""
            seconds = self.settings.drain_seconds if query_args.seconds is None else query_args.seconds
            self.drain.begin(f"GET /drain, {seconds:g}s")
            await self.drain.hold(seconds)
            return {"status": "draining", "seconds": seconds}

    def _log_readiness(self, ready: bool, checks: dict[str, str]) -> None:
        """Log each change of readiness (probes are not traced, so this is how telemetry sees one)."""
        if ready == self._ready:
            return
        self._ready = ready
        if ready:
            log.info("ready to take traffic")
        else:
            failing = {name: result for name, result in checks.items() if result != "ok"}
            log.warning("not ready to take traffic: %s", failing)


def service_app() -> ServiceApp:
    """The running service's app, typed."""
    return cast(ServiceApp, current_app)


def flags() -> FeatureFlags:
    return service_app().flags


async def _run_check(check: ReadinessCheck) -> str:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            await check()
    except TimeoutError:
        return f"timed out after {READINESS_TIMEOUT_SECONDS}s"
    except Exception as err:  # noqa: BLE001 - any failure means not ready, reported as text
        return str(err) or type(err).__name__
    return "ok"


def _method_only(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Name the server span by method until routing names it by template (never by raw path)."""
    return scope.get("method", "HTTP"), {}


async def _name_span_by_route() -> None:
    rule = request.url_rule
    if rule is not None:
        span = trace.get_current_span()
        span.update_name(f"{request.method} {rule.rule}")
        span.set_attribute("http.route", rule.rule)


@asynccontextmanager
async def background_task(coro: Awaitable[None], name: str) -> AsyncIterator[asyncio.Task[None]]:
    """Run `coro` as a task for the life of the context; cancel it on exit."""
    task: asyncio.Task[None] = asyncio.ensure_future(coro)
    task.set_name(name)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

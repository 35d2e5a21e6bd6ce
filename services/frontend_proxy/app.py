"""frontend-proxy's app: every request but its own /healthz, /readyz, /metrics and /drain is streamed to the
upstream the route table names, and the upstream's answer is streamed back.

Forwarding happens in a `before_request` hook rather than a catch-all route: Quart's URL map also holds
the rules every ServiceApp gets (/static/, /openapi.json, /docs), and those paths belong to the frontend.

Neither body is held in memory: the request body goes up chunk by chunk as it arrives and the response
body comes back the same way, undecoded (a compressed answer stays compressed). An upstream that refuses
or drops the connection before answering is a JSON 502, one that does not answer in time a JSON 504. A
failure after the answer has started cannot change its status: the connection is cut so the client sees
an incomplete response rather than a short one that looks whole.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from opentelemetry import metrics, trace
from pydantic import Field
from quart import Response, request
from werkzeug.datastructures import Headers

from services.common.app import ServiceApp, error_response
from services.common.config import ServiceSettings
from services.frontend_proxy.forwarding import REQUEST_ID, downstream_headers, request_id, upstream_headers
from services.frontend_proxy.routes import Route, shop_routes

log = logging.getLogger(__name__)
meter = metrics.get_meter(__name__)
upstream_failures = meter.create_counter(
    "app.proxy.upstream_failures", description="Requests the upstream did not answer, by route and kind"
)

OWN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/drain"})
# Bodies are the upstreams' to judge (frontend reads 64 KiB); the collector's OTLP/HTTP receiver takes
# up to 20 MiB (confighttp's max_request_body_size), so the proxy forwards that much.
MAX_FORWARDED_BODY_BYTES = 20 * 1024 * 1024


class Settings(ServiceSettings):
    frontend_url: str = "http://frontend:8080"
    otel_collector_url: str = "http://otel-collector:4318"
    upstream_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    upstream_read_timeout_seconds: float = Field(default=30.0, gt=0)
    upstream_max_connections: int = Field(default=200, ge=1)


def upstream_client(settings: Settings) -> httpx.AsyncClient:
    """One pool for all upstreams. It keeps no cookies (one shopper's must never reach another's
    request), follows no redirects and ignores proxy variables: answers go back as they came."""
    read = settings.upstream_read_timeout_seconds
    return httpx.AsyncClient(
        timeout=httpx.Timeout(read, connect=settings.upstream_connect_timeout_seconds),
        limits=httpx.Limits(max_connections=settings.upstream_max_connections),
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        follow_redirects=False,
        trust_env=False,
    )


def create_app(settings: Settings | None = None) -> ServiceApp:
    settings = settings or Settings.from_env()
    app = ServiceApp(
        "frontend-proxy", settings, title="Shopstack frontend-proxy", max_body_bytes=MAX_FORWARDED_BODY_BYTES
    )
    routes = shop_routes(settings.frontend_url, settings.otel_collector_url)
    upstreams = upstream_client(settings)

    @app.before_serving
    async def open_clients() -> None:
        await app.enter(upstreams)

    @app.before_request
    async def forward() -> Response | None:
        if request.path in OWN_PATHS:
            return None
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.path
        route = routes.match(raw_path)
        if route is None:
            return error_response(404, f"no route for {raw_path}")
        return await proxy(route, raw_path)

    async def proxy(route: Route, raw_path: str) -> Response:
        rid = request_id(request.headers.get(REQUEST_ID))
        span = trace.get_current_span()
        span.update_name(f"{request.method} {route.prefix}")
        span.set_attributes({"app.proxy.route": route.prefix, "app.request.id": rid})
        url = route.target(raw_path)
        if request.query_string:
            url += "?" + request.query_string.decode("latin-1")
        outgoing = upstreams.build_request(
            request.method,
            url,
            headers=upstream_headers(
                request.headers.items(),
                client=request.remote_addr,
                scheme=request.scheme,
                host=request.host,
                request_id=rid,
            ),
            content=request_body() if has_body() else None,
        )
        try:
            answer = await upstreams.send(outgoing, stream=True)
        except httpx.PoolTimeout:
            return failed(route, rid, 503, "busy", "the proxy has no free upstream connection")
        except httpx.TimeoutException as err:
            return failed(
                route, rid, 504, "timeout", f"upstream did not answer in time ({type(err).__name__})"
            )
        except httpx.TransportError as err:
            return failed(
                route, rid, 502, "unreachable", f"upstream unreachable: {err or type(err).__name__}"
            )
        span.set_attribute("app.proxy.upstream.status_code", answer.status_code)
        response = Response(
            response_body(answer, rid),
            status=answer.status_code,
            headers=Headers(downstream_headers(answer.headers.multi_items(), request_id=rid)),
        )
        if "content-type" not in answer.headers:
            del response.headers["Content-Type"]  # the default Quart adds; the answer had none
        return response

    def failed(route: Route, rid: str, status: int, kind: str, message: str) -> Response:
        log.warning("%s %s (request %s): %s", request.method, request.path, rid, message)
        upstream_failures.add(1, {"route": route.prefix, "kind": kind})
        trace.get_current_span().set_attribute("app.proxy.failure", kind)
        response = error_response(status, message)
        response.headers[REQUEST_ID] = rid
        return response

    return app


def has_body() -> bool:
    length = request.headers.get("Content-Length", "")
    return (length not in ("", "0")) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


async def request_body() -> AsyncIterator[bytes]:
    async for chunk in request.body:
        yield chunk


async def response_body(answer: httpx.Response, rid: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    except httpx.HTTPError as err:
        log.warning("upstream broke off the answer to request %s: %r", rid, err)
        trace.get_current_span().record_exception(err)
        raise
    finally:
        await answer.aclose()

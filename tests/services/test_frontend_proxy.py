"""frontend-proxy as a real process in front of a small upstream that runs in this test process (so the
test can see what arrived upstream, stream bodies in steps and stall on purpose), and in front of the
real telemetry receiver and the real shop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config

from sim.supervisor.process import ManagedProcess, free_port, http_ok
from sim.telemetry.client import TelemetryQuery
from tests.support.shop import HOST, Shop

CHUNK = 64 * 1024
LARGE_BODY_BYTES = 8 * 1024 * 1024
PROXY_READ_TIMEOUT_SECONDS = 2.0
SLOW_UPSTREAM_SECONDS = 6.0
IN_FLIGHT_SECONDS = 1.0
STEP_TIMEOUT_SECONDS = 15.0

Scope = dict[str, Any]


def pattern(size: int) -> bytes:
    """`size` bytes that are not all alike, so a reordered or repeated chunk changes the hash."""
    block = bytes(range(256)) * (CHUNK // 256)
    return (block * (size // len(block) + 1))[:size]


class Upstream:
    """An ASGI app served by hypercorn in a thread: it echoes what it received, takes and sends large
    bodies in steps the test controls, answers slowly, and sets cookies."""

    def __init__(self) -> None:
        self.port = free_port(HOST)
        self.url = f"http://{HOST}:{self.port}"
        self.upload_started = threading.Event()
        self.download_received = threading.Event()
        self.download_waited_for_client: bool | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),))

    def __enter__(self) -> Upstream:
        self._thread.start()
        deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
        while not http_ok(f"{self.url}/healthz"):
            assert time.monotonic() < deadline, "the test upstream did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STEP_TIMEOUT_SECONDS)
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        config = Config()
        config.bind = [f"{HOST}:{self.port}"]
        config.accesslog = None
        config.errorlog = None
        await serve(self.app, config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]

    async def app(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        handlers = {
            "/upload": self.upload,
            "/download": self.download,
            "/slow": self.slow,
            "/in-flight": self.in_flight,
            "/set-cookie": self.set_cookie,
            "/hop-by-hop": self.hop_by_hop,
            "/redirect": self.redirect,
        }
        await handlers.get(scope["path"], self.echo)(scope, receive, send)

    async def echo(self, scope: Scope, receive: Any, send: Any) -> None:
        body = await read_body(receive)
        await respond(
            send,
            200,
            {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode(),
                "headers": [[name.decode(), value.decode()] for name, value in scope["headers"]],
                "body_bytes": len(body),
            },
        )

    async def upload(self, scope: Scope, receive: Any, send: Any) -> None:
        digest, size = hashlib.sha256(), 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                self.upload_started.set()
                digest.update(chunk)
                size += len(chunk)
            if not message.get("more_body"):
                break
        await respond(send, 200, {"size": size, "sha256": digest.hexdigest()})

    async def download(self, scope: Scope, receive: Any, send: Any) -> None:
        """The first chunk, then nothing until the client says it has it, then the rest."""
        size = int(parse_qs(scope["query_string"].decode())["size"][0])
        data = pattern(size)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"x/bytes")]})
        await send({"type": "http.response.body", "body": data[:CHUNK], "more_body": True})
        waited = await asyncio.to_thread(self.download_received.wait, STEP_TIMEOUT_SECONDS)
        self.download_waited_for_client = waited
        for start in range(CHUNK, size, CHUNK):
            await send({"type": "http.response.body", "body": data[start : start + CHUNK], "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def slow(self, scope: Scope, receive: Any, send: Any) -> None:
        await asyncio.sleep(SLOW_UPSTREAM_SECONDS)
        await respond(send, 200, {"slow": True})

    async def in_flight(self, scope: Scope, receive: Any, send: Any) -> None:
        """Answers after a second, within the read timeout: time enough to stop the proxy meanwhile."""
        await asyncio.sleep(IN_FLIGHT_SECONDS)
        await respond(send, 200, {"finished": True})

    async def set_cookie(self, scope: Scope, receive: Any, send: Any) -> None:
        await respond(send, 200, {}, [(b"set-cookie", b"secret=shopper-one; Path=/")])

    async def hop_by_hop(self, scope: Scope, receive: Any, send: Any) -> None:
        extra = [(b"keep-alive", b"timeout=5"), (b"proxy-authenticate", b"Basic"), (b"x-end-to-end", b"kept")]
        await respond(send, 200, {}, extra)

    async def redirect(self, scope: Scope, receive: Any, send: Any) -> None:
        await respond(send, 303, {}, [(b"location", b"/cart")])


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def respond(
    send: Any, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def start_proxy(
    workdir: Path, name: str, frontend_url: str, collector_url: str, telemetry: TelemetryQuery
) -> tuple[ManagedProcess, str]:
    port = free_port(HOST)
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": telemetry.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "PATH": "/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "BIND_HOST": HOST,
        "PORT": str(port),
        "OTEL_SERVICE_NAME": "frontend-proxy",
        "FRONTEND_URL": frontend_url,
        "OTEL_COLLECTOR_URL": collector_url,
        "UPSTREAM_READ_TIMEOUT_SECONDS": str(PROXY_READ_TIMEOUT_SECONDS),
    }
    process = ManagedProcess(
        name, [sys.executable, "-m", "services.frontend_proxy"], workdir / "logs" / f"{name}.log", env=env
    ).start()
    url = f"http://{HOST}:{port}"
    process.wait_ready(lambda: http_ok(f"{url}/healthz"), timeout=60)
    return process, url


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(workdir: Path, upstream: Upstream, telemetry: TelemetryQuery) -> Iterator[httpx.Client]:
    """A proxy whose frontend is the test upstream and whose collector is the telemetry receiver."""
    process, url = start_proxy(workdir, "proxy-to-test-upstream", upstream.url, telemetry.url, telemetry)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client
    finally:
        process.stop()


@pytest.fixture(scope="module")
def proxy_to_nowhere(workdir: Path, upstream: Upstream, telemetry: TelemetryQuery) -> Iterator[httpx.Client]:
    """A proxy whose frontend refuses connections and whose collector is the test upstream at /collector."""
    process, url = start_proxy(
        workdir,
        "proxy-to-nowhere",
        f"http://{HOST}:{free_port(HOST)}",
        f"{upstream.url}/collector",
        telemetry,
    )
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client
    finally:
        process.stop()


def seen_upstream(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    body["header_map"] = {name: value for name, value in body["headers"]}
    return body


@pytest.mark.parametrize(
    ("method", "path", "upstream_path", "query"),
    [
        ("GET", "/", "/", ""),
        ("GET", "/product/OLJCESPC7Z?currency=USD", "/product/OLJCESPC7Z", "currency=USD"),
        ("POST", "/cart", "/cart", ""),
        ("GET", "/api/products?q=telescope", "/api/products", "q=telescope"),
        ("DELETE", "/api/cart", "/api/cart", ""),
        ("PUT", "/api/anything/deeper", "/api/anything/deeper", ""),
        ("GET", "/static/style.css", "/static/style.css", ""),
        ("GET", "/openapi.json", "/openapi.json", ""),
        ("GET", "/docs", "/docs", ""),
    ],
)
def test_the_root_and_api_prefixes_reach_the_frontend_with_path_and_query_unchanged(
    proxy: httpx.Client, method: str, path: str, upstream_path: str, query: str
) -> None:
    seen = seen_upstream(proxy.request(method, path, content=b"x" if method in {"POST", "PUT"} else None))
    assert (seen["method"], seen["path"], seen["query"]) == (method, upstream_path, query)


def test_the_otlp_prefix_reaches_the_collector_with_the_prefix_stripped(
    proxy_to_nowhere: httpx.Client,
) -> None:
    seen = seen_upstream(proxy_to_nowhere.post("/otlp-http/v1/traces", content=b"{}"))
    assert seen["path"] == "/collector/v1/traces"
    assert seen["body_bytes"] == 2


def test_an_otlp_json_trace_posted_through_the_proxy_reaches_the_telemetry_receiver(
    proxy: httpx.Client, telemetry: TelemetryQuery
) -> None:
    trace_id = secrets.token_hex(16)
    now = time.time_ns()
    trace = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "browser"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "test"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": "eee19b7ec3c1b174",
                                "name": "documentLoad",
                                "kind": 1,
                                "startTimeUnixNano": str(now - 1_000_000),
                                "endTimeUnixNano": str(now),
                            }
                        ],
                    }
                ],
            }
        ]
    }
    response = proxy.post("/otlp-http/v1/traces", json=trace)

    assert response.status_code == 200, response.text
    [span] = telemetry.wait_for_trace(trace_id, services={"browser"})
    assert span.name == "documentLoad"


def test_the_proxy_traces_each_request_under_its_route_and_passes_the_trace_upstream(
    proxy: httpx.Client, telemetry: TelemetryQuery
) -> None:
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"

    response = proxy.get(
        "/api/products/OLJCESPC7Z", headers={"traceparent": traceparent, "X-Request-Id": "t-1"}
    )

    upstream_parent = seen_upstream(response)["header_map"]["traceparent"].split("-")
    [server] = telemetry.wait_for_spans(trace_id=trace_id, service="frontend-proxy", kind="SERVER")
    clients = telemetry.spans(trace_id=trace_id, service="frontend-proxy", kind="CLIENT")
    assert server.name == "GET /api/"
    assert server.attributes["app.request.id"] == "t-1"
    assert server.attributes["app.proxy.route"] == "/api/"
    assert upstream_parent[1] == trace_id
    assert upstream_parent[2] in {span.span_id for span in clients}


def test_the_proxy_answers_its_own_health_and_metrics(
    proxy: httpx.Client, proxy_to_nowhere: httpx.Client
) -> None:
    assert proxy.get("/healthz").json() == {"status": "ok", "version": "dev"}
    assert proxy.get("/readyz").status_code == 200
    assert "# TYPE" in proxy.get("/metrics").text
    ready = proxy_to_nowhere.get("/readyz")  # its frontend is down: the proxy itself can still serve
    assert (ready.status_code, ready.json()["checks"]) == (200, {})


def test_the_proxy_drains_itself_and_closes_the_connections_of_the_answers_it_forwards(
    workdir: Path, upstream: Upstream, telemetry: TelemetryQuery
) -> None:
    process, url = start_proxy(workdir, "proxy-draining", upstream.url, upstream.url, telemetry)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert seen_upstream(client.get("/before"))["path"] == "/before"
            drained = client.get("/drain?seconds=0")  # the proxy's own, not the frontend's
            assert drained.json() == {"status": "draining", "seconds": 0}
            readiness = client.get("/readyz")
            assert (readiness.status_code, readiness.json()) == (
                503,
                {"status": "unready", "reason": "draining"},
            )
            forwarded = client.get("/after")
            assert seen_upstream(forwarded)["path"] == "/after"
            assert forwarded.headers["Connection"] == "close"
            assert forwarded.headers["X-Service-Version"] == "dev"
        assert process.stop() == 0
    finally:
        process.stop()


def test_a_request_id_sent_by_the_client_is_kept_upstream_and_returned(proxy: httpx.Client) -> None:
    response = proxy.get("/", headers={"X-Request-Id": "req-42"})
    assert seen_upstream(response)["header_map"]["x-request-id"] == "req-42"
    assert response.headers["x-request-id"] == "req-42"


def test_a_request_without_an_id_gets_one_upstream_and_back(proxy: httpx.Client) -> None:
    first, second = proxy.get("/"), proxy.get("/")
    generated = seen_upstream(first)["header_map"]["x-request-id"]
    assert len(generated) == 36
    assert first.headers["x-request-id"] == generated
    assert second.headers["x-request-id"] != generated


def test_the_upstream_learns_the_client_address_scheme_and_host(proxy: httpx.Client) -> None:
    proxy_host = httpx.URL(str(proxy.base_url)).netloc.decode()
    headers = seen_upstream(proxy.get("/", headers={"X-Forwarded-For": "203.0.113.7"}))["header_map"]
    assert headers["x-forwarded-for"] == f"203.0.113.7, {HOST}"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == proxy_host
    assert headers["host"] != proxy_host


def test_hop_by_hop_headers_stop_at_the_proxy_both_ways(proxy: httpx.Client) -> None:
    sent = {
        "Connection": "keep-alive, X-Hop-Secret",
        "X-Hop-Secret": "not for the upstream",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic c2VjcmV0",
        "X-End-To-End": "kept",
    }
    received = seen_upstream(proxy.get("/", headers=sent))["header_map"]
    assert received["x-end-to-end"] == "kept"
    assert not {"x-hop-secret", "keep-alive", "proxy-authorization"} & set(received)

    answer = proxy.get("/hop-by-hop")
    assert answer.headers["x-end-to-end"] == "kept"
    assert "keep-alive" not in answer.headers
    assert "proxy-authenticate" not in answer.headers


def test_a_large_request_body_streams_upstream_before_it_is_all_sent(
    proxy: httpx.Client, upstream: Upstream
) -> None:
    """The client holds back all but the first chunk until the upstream has that chunk: a proxy that
    buffered the body would never pass it on."""
    data = pattern(LARGE_BODY_BYTES)
    upstream.upload_started.clear()

    def body() -> Iterator[bytes]:
        yield data[:CHUNK]
        assert upstream.upload_started.wait(STEP_TIMEOUT_SECONDS), (
            "the first chunk did not reach the upstream"
        )
        for start in range(CHUNK, len(data), CHUNK):
            yield data[start : start + CHUNK]

    response = proxy.post("/upload", content=body())

    assert response.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_a_large_request_body_with_a_content_length_arrives_whole(proxy: httpx.Client) -> None:
    data = pattern(LARGE_BODY_BYTES)
    response = proxy.post("/upload", content=data)
    assert response.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_a_large_answer_streams_back_before_the_upstream_has_sent_it_all(
    proxy: httpx.Client, upstream: Upstream
) -> None:
    """The upstream holds back all but the first chunk until the client has that chunk."""
    size = 2 * LARGE_BODY_BYTES
    upstream.download_received.clear()
    digest, received = hashlib.sha256(), 0
    with proxy.stream("GET", "/download", params={"size": size}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "x/bytes"
        for chunk in response.iter_raw():
            upstream.download_received.set()
            digest.update(chunk)
            received += len(chunk)

    assert upstream.download_waited_for_client is True
    assert (received, digest.hexdigest()) == (size, hashlib.sha256(pattern(size)).hexdigest())


def test_an_upstream_that_refuses_connections_is_a_json_502(proxy_to_nowhere: httpx.Client) -> None:
    response = proxy_to_nowhere.get("/product/OLJCESPC7Z", headers={"X-Request-Id": "down-1"})
    assert response.status_code == 502
    assert response.json()["status"] == 502
    assert "unreachable" in response.json()["error"]
    assert response.headers["x-request-id"] == "down-1"


def test_an_upstream_that_answers_too_slowly_is_a_json_504(proxy: httpx.Client) -> None:
    started = time.monotonic()
    response = proxy.get("/slow")
    assert response.status_code == 504
    assert response.json()["status"] == 504
    assert time.monotonic() - started < SLOW_UPSTREAM_SECONDS


def test_redirects_go_back_to_the_client_unfollowed(proxy: httpx.Client) -> None:
    response = proxy.get("/redirect")
    assert response.status_code == 303
    assert response.headers["location"] == "/cart"


def test_one_clients_cookies_never_reach_another_clients_request(proxy: httpx.Client) -> None:
    first = proxy.get("/set-cookie")
    assert first.headers["set-cookie"].startswith("secret=shopper-one")

    with httpx.Client(base_url=str(proxy.base_url), timeout=30) as other_client:
        headers = seen_upstream(other_client.get("/"))["header_map"]
    assert "cookie" not in headers


def test_the_shops_proxy_serves_the_storefront_pages_and_api(shop: Shop) -> None:
    shop.ensure("frontend-proxy")
    with httpx.Client(base_url=shop.url("frontend-proxy"), timeout=30) as browser:
        home = browser.get("/")
        assert home.status_code == 200
        assert "Shopstack" in home.text
        assert "session_id" in home.cookies
        catalog = httpx.get(f"{shop.url('product-catalog')}/products", timeout=30).json()
        assert browser.get("/api/products").json() == catalog
        assert browser.get("/static/style.css").headers["content-type"].startswith("text/css")


def test_sigterm_lets_the_request_in_flight_finish_then_refuses_new_ones_and_exits_0(
    workdir: Path, upstream: Upstream, telemetry: TelemetryQuery
) -> None:
    process, url = start_proxy(workdir, "proxy-stopped-mid-request", upstream.url, telemetry.url, telemetry)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(httpx.get, f"{url}/in-flight", timeout=STEP_TIMEOUT_SECONDS)
            time.sleep(IN_FLIGHT_SECONDS / 2)
            process.signal(signal.SIGTERM)
            response = in_flight.result(STEP_TIMEOUT_SECONDS)
        assert response.status_code == 200
        assert response.json() == {"finished": True}
        assert process.popen is not None
        assert process.popen.wait(STEP_TIMEOUT_SECONDS) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=2)
    finally:
        process.stop()

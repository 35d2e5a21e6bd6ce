"""The ALB data plane: an ASGI app that serves the emulator's ALBs by their own listener rules.

Every `poll_interval` seconds it reads the emulator's ALBs, listeners, rules, target groups and
registered targets (`routing.read_snapshot`, in a thread) and hands the targets to its health checker,
so a change of rules or weights takes effect within that interval. Each request on a local port is
routed for the listener port that local port stands for, to a target group of its rule's forward action
picked by weight, balanced round robin over that group's healthy registered targets, and streamed both
ways with `X-Forwarded-For/Proto/Port` and `X-Amzn-Trace-Id` added. No healthy target: the group fails open
to the targets measured unhealthy, as an ALB does; none of those either: 503; the target fails: 502; it
times out: 504. A refused (or reset before answering) connection is retried once on another target for
idempotent methods whose body was small enough to keep.

A deregistered target drains: it gets no new request, and the requests already on it may finish for the
group's deregistration delay (`deregistration_delay.timeout_seconds`, in real seconds: unlike the health
checks it is not scaled, since the deploy and the pods' drain wait that long, and a request slow on a
busy machine must not be dropped where AWS would let it finish); then they are dropped (502 if not yet
answered, else the client's connection is cut, as an ALB does). A target with nothing in flight is gone
at once. One access log line per request, in the ALB's field order. The admin port serves `/healthz` and
`/targets` (every registered target's measured health, with ELBv2's reason and description, and
in-flight count; the draining ones), never the ALBs' routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any, TextIO

import httpx

from sim.alb.elbv2 import client as aws_client
from sim.alb.health import HealthChecker, TargetHealth
from sim.alb.routing import (
    Request,
    Rule,
    Snapshot,
    Target,
    WeightedRoundRobin,
    forward_groups,
    read_snapshot,
    route,
)

log = logging.getLogger(__name__)

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRY_BODY_LIMIT = 1 << 20  # bodies up to this size are kept, so that the request can be retried
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def _status_text(status: int) -> bytes:
    texts = {404: "Not Found", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
    return f"<html><body><h1>{status} {texts.get(status, '')}</h1></body></html>\n".encode()


class AccessLog:
    """ALB access log lines: type time elb client:port target:port request_processing_time
    target_processing_time response_processing_time elb_status_code target_status_code received_bytes
    sent_bytes "request" "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id" "domain_name"
    "chosen_cert_arn" matched_rule_priority request_creation_time "actions_executed" "redirect_url"
    "error_reason"."""

    def __init__(self, path: Path | None) -> None:
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", buffering=1)

    def write(self, fields: list[str]) -> None:
        if self._file is not None:
            self._file.write(" ".join(fields) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class Exchange:
    """What one request did, for its access log line."""

    def __init__(self, scope: Scope, listener_port: int) -> None:
        self.started = time.monotonic()
        self.created = datetime.now(UTC)
        self.scope = scope
        self.listener_port = listener_port
        self.lb = "-"
        self.target = "-"
        self.group = "-"
        self.priority = "-"
        self.action = "-"
        self.status = 0
        self.target_status = "-"
        self.received = 0
        self.sent = 0
        self.target_started: float | None = None
        self.target_answered: float | None = None
        self.responding = False  # the response has begun going to the client
        self.error = "-"
        self.trace_id = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"

    def fields(self, headers: Mapping[str, str]) -> list[str]:
        done = time.monotonic()
        client = self.scope.get("client") or ("-", 0)
        host = headers.get("host", "-")
        query = self.scope.get("query_string", b"").decode("latin-1")
        url = f"http://{host.split(':')[0]}:{self.listener_port}{self.scope.get('path', '/')}"
        url += f"?{query}" if query else ""
        version = self.scope.get("http_version", "1.1")

        def seconds(value: float | None) -> str:
            return "-1" if value is None else f"{value:.3f}"

        if self.target_started is not None and self.target_answered is not None:
            request_time = seconds(self.target_started - self.started)
            target_time = seconds(self.target_answered - self.target_started)
            response_time = seconds(done - self.target_answered)
        else:
            request_time, target_time, response_time = seconds(done - self.started), "-1", "-1"
        return [
            "http",
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            self.lb,
            f"{client[0]}:{client[1]}",
            self.target,
            request_time,
            target_time,
            response_time,
            str(self.status),
            self.target_status,
            str(self.received),
            str(self.sent),
            f'"{self.scope.get("method", "-")} {url} HTTP/{version}"',
            '"' + headers.get("user-agent", "-").replace('"', "'") + '"',
            "-",
            "-",
            self.group,
            f'"{self.trace_id}"',
            '"-"',
            '"-"',
            self.priority,
            self.created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            f'"{self.action}"',
            '"-"',
            f'"{self.error}"',
        ]


class _UpstreamRefused(Exception):
    """The target refused the connection, or dropped it before answering a request whose body is kept:
    an idempotent request may go to another target."""


class ConnectionCut(Exception):
    """A draining target's deregistration delay ran out while it answered: raised out of the app, so that
    the server cuts the client's connection (an expected end, logged as such)."""


@dataclass
class Draining:
    """A deregistered target with requests in flight, until `deadline` (event loop time)."""

    group: str  # the target group's name
    deadline: float


class DataPlane:
    """The ASGI app; `listeners` maps each local port to the listener port it serves."""

    def __init__(
        self,
        aws_endpoint: str,
        listeners: Mapping[int, int],
        admin_port: int,
        access_log: Path | None = None,
        poll_interval: float = 0.5,
        time_scale: float = 0.1,
    ) -> None:
        self.listeners = dict(listeners)
        self.admin_port = admin_port
        self.poll_interval = poll_interval
        #: health-check times and deregistration delays are the target groups' times this
        self.time_scale = time_scale
        self.snapshot = Snapshot()
        self.polled = False
        self.checker = HealthChecker(time_scale)
        #: the requests on each (target group ARN, target), as the deadlines that can drop them
        self.inflight: dict[tuple[str, Target], set[asyncio.Timeout]] = {}
        self.draining: dict[tuple[str, Target], Draining] = {}
        self._aws_endpoint = aws_endpoint
        self._access_log = AccessLog(access_log)
        self._round_robin: dict[str, itertools.count[int]] = {}
        self._weights = WeightedRoundRobin()
        self._client: httpx.AsyncClient | None = None
        self._poller: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            port = int((scope.get("server") or ("", 0))[1])
            if port == self.admin_port:
                await self._admin(scope, send)
            else:
                await self._proxy(scope, receive, send, self.listeners.get(port, 80))

    # -- lifecycle

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client = httpx.AsyncClient(
                    # no cookie jar: a Set-Cookie a target sends one client must never go out with
                    # another client's request (one shopper's session would become everyone's)
                    cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                    trust_env=False,
                    timeout=httpx.Timeout(60.0, connect=2.0),
                    limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
                )
                self._poller = asyncio.create_task(self._poll(), name="alb-poller")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._poller is not None:
                    self._poller.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._poller
                await self.checker.close()
                if self._client is not None:
                    await self._client.aclose()
                self._access_log.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _poll(self) -> None:
        elb = aws_client(self._aws_endpoint, "elbv2")
        while True:
            try:
                snapshot = await asyncio.to_thread(read_snapshot, elb)
            except Exception:  # the emulator may be restarting: keep the last snapshot
                log.exception("reading the emulator's load balancers failed")
            else:
                self._drain(self.snapshot, snapshot)
                self.snapshot, self.polled = snapshot, True
                self.checker.update(snapshot.target_groups)
            await asyncio.sleep(self.poll_interval)

    def _drain(self, old: Snapshot, new: Snapshot) -> None:
        """Start draining the targets with requests in flight that `new` no longer registers, for their
        group's deregistration delay (scaled); a target registered again stops draining."""
        registered = {(arn, t) for arn, group in new.target_groups.items() for t in group.targets}
        now = asyncio.get_running_loop().time()
        for arn, group in old.target_groups.items():
            for target in group.targets:
                key = (arn, target)
                if key in registered or key not in self.inflight or key in self.draining:
                    continue
                draining = Draining(group.name, now + group.deregistration_delay)
                self.draining[key] = draining
                log.info("target %s of %s draining for %.1f s", target, group.name, draining.deadline - now)
                for deadline in self.inflight[key]:
                    deadline.reschedule(draining.deadline)
        for key in registered & self.draining.keys():
            del self.draining[key]
            for deadline in self.inflight.get(key, ()):
                deadline.reschedule(None)

    # -- admin

    async def _admin(self, scope: Scope, send: Send) -> None:
        if scope.get("path") == "/healthz":
            await _respond(send, 200 if self.polled else 503, b"ok\n" if self.polled else b"starting\n")
            return
        if scope.get("path") == "/targets":
            groups = {
                group.name: [
                    self._target_entry(arn, target, self.checker.health.get((arn, target)) or TargetHealth())
                    for target in group.targets
                ]
                for arn, group in self.snapshot.target_groups.items()
            }
            now = asyncio.get_running_loop().time()
            draining = [
                {
                    "target_group": d.group,
                    "target": str(key[1]),
                    "inflight": len(self.inflight.get(key, ())),
                    "seconds_left": round(max(0.0, d.deadline - now), 3),
                }
                for key, d in self.draining.items()
            ]
            body = json.dumps({"target_groups": groups, "draining": draining}).encode()
            await _respond(send, 200, body, "application/json")
            return
        await _respond(send, 404, b"not found\n")

    def _target_entry(self, arn: str, target: Target, health: TargetHealth) -> dict[str, Any]:
        return {
            "target": str(target),
            "state": health.state,
            "reason": health.reason,
            "description": health.description,
            "inflight": len(self.inflight.get((arn, target), ())),
        }

    # -- proxying

    async def _proxy(self, scope: Scope, receive: Receive, send: Send, listener_port: int) -> None:
        exchange = Exchange(scope, listener_port)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            await self._handle(scope, receive, send, exchange)
        finally:
            self._access_log.write(exchange.fields(headers))

    async def _handle(self, scope: Scope, receive: Receive, send: Send, exchange: Exchange) -> None:
        raw_headers = [
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])
        ]
        host = next((v for k, v in raw_headers if k == "host"), "").split(":")[0].lower()
        request = Request(
            scope["method"],
            host,
            scope["path"],
            scope.get("query_string", b"").decode("latin-1"),
            raw_headers,
        )
        routed = route(self.snapshot, exchange.listener_port, request)
        if routed is None:
            await self._error(send, exchange, 503, "NoLoadBalancerOnListener")
            return
        lb, rule = routed
        exchange.lb = lb.log_id
        exchange.priority = "0" if rule.is_default else str(rule.priority)
        action = next(iter(rule.actions), None)
        if action is None:
            await self._error(send, exchange, 503, "NoAction")
            return
        exchange.action = str(action["Type"])
        if action["Type"] == "fixed-response":
            config = action.get("FixedResponseConfig") or {}
            exchange.status = int(config.get("StatusCode", 200))
            body = str(config.get("MessageBody", "")).encode()
            exchange.sent = len(body)
            await _respond(send, exchange.status, body, str(config.get("ContentType", "text/plain")))
            return
        if action["Type"] == "redirect":
            await self._redirect(send, exchange, action, request)
            return
        if action["Type"] != "forward":
            await self._error(send, exchange, 503, "UnsupportedAction")
            return
        await self._forward(scope, receive, send, exchange, rule, raw_headers)

    async def _redirect(
        self, send: Send, exchange: Exchange, action: Mapping[str, Any], request: Request
    ) -> None:
        config = action.get("RedirectConfig") or {}
        protocol = str(config.get("Protocol", "#{protocol}")).replace("#{protocol}", "http").lower()
        host = str(config.get("Host", "#{host}")).replace("#{host}", request.host)
        port = str(config.get("Port", "#{port}")).replace("#{port}", str(exchange.listener_port))
        path = (
            str(config.get("Path", "/#{path}"))
            .replace("/#{path}", request.path)
            .replace("#{path}", request.path)
        )
        query = str(config.get("Query", "#{query}")).replace("#{query}", request.query)
        location = f"{protocol}://{host}:{port}{path}" + (f"?{query}" if query else "")
        exchange.status = 301 if config.get("StatusCode") == "HTTP_301" else 302
        await send(
            {
                "type": "http.response.start",
                "status": exchange.status,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    def _pick_group(self, rule: Rule) -> str | None:
        return self._weights.pick([g for action in rule.actions[:1] for g in forward_groups(action)])

    def _pick_target(self, group_arn: str, exclude: set[Target]) -> Target | None:
        group = self.snapshot.target_groups.get(group_arn)
        if group is None:
            return None
        healthy = [t for t in group.targets if t not in exclude and self.checker.healthy(group_arn, t)]
        if not healthy and not any(self.checker.healthy(group_arn, t) for t in group.targets):
            # as an ALB fails open: with no healthy target in the group, every target checked unhealthy
            # gets requests (targets still registering or draining do not)
            healthy = [t for t in group.targets if t not in exclude and self.checker.unhealthy(group_arn, t)]
        if not healthy:
            return None
        turn = next(self._round_robin.setdefault(group_arn, itertools.count()))
        return healthy[turn % len(healthy)]

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        exchange: Exchange,
        rule: Rule,
        headers: list[tuple[str, str]],
    ) -> None:
        group_arn = self._pick_group(rule)
        if group_arn is None:
            await self._error(send, exchange, 503, "NoTargetGroup")
            return
        exchange.group = group_arn
        method = scope["method"]
        body, complete = await _read_body(receive, RETRY_BODY_LIMIT if method in IDEMPOTENT else 0)
        exchange.received = len(body)
        retryable = method in IDEMPOTENT and complete
        upstream_headers = forwarded_headers(scope, headers, exchange, keep_length=not complete)
        tried: set[Target] = set()
        while True:
            target = self._pick_target(group_arn, tried)
            if target is None:
                await self._error(
                    send,
                    exchange,
                    503 if not tried else 502,
                    "NoHealthyTargets" if not tried else "TargetConnectionError",
                )
                return
            tried.add(target)
            exchange.target = str(target)
            content: bytes | AsyncIterator[bytes] = (
                body if complete else _stream_body(body, receive, exchange)
            )
            try:
                await self._send_upstream(
                    scope, send, exchange, (group_arn, target), upstream_headers, content
                )
                return
            except _UpstreamRefused:
                self.checker.report_refused(group_arn, target)
                if retryable and len(tried) < 2:
                    log.info(
                        "target %s refused %s %s: retrying on another target", target, method, scope["path"]
                    )
                    continue
                await self._error(send, exchange, 502, "TargetConnectionError")
                return

    async def _send_upstream(
        self,
        scope: Scope,
        send: Send,
        exchange: Exchange,
        key: tuple[str, Target],
        headers: list[tuple[str, str]],
        content: bytes | AsyncIterator[bytes],
    ) -> None:
        """The request on target `key[1]` of group `key[0]`, in flight there until it ends or the
        target's deregistration delay runs out."""
        draining = self.draining.get(key)
        try:
            async with asyncio.timeout_at(None if draining is None else draining.deadline) as deadline:
                self.inflight.setdefault(key, set()).add(deadline)
                try:
                    await self._exchange(scope, send, exchange, key[1], headers, content)
                finally:
                    self.inflight[key].discard(deadline)
                    if not self.inflight[key]:  # nothing left to drain: deregistration is complete
                        del self.inflight[key]
                        self.draining.pop(key, None)
        except TimeoutError:
            if not deadline.expired():
                raise
            log.info("deregistration delay of %s ran out with a request on it: dropped", key[1])
            if not exchange.responding:
                await self._error(send, exchange, 502, "TargetResponseError")
                return
            exchange.error = "TargetResponseError"
            raise ConnectionCut(f"target {key[1]} deregistered") from None

    async def _exchange(
        self,
        scope: Scope,
        send: Send,
        exchange: Exchange,
        target: Target,
        headers: list[tuple[str, str]],
        content: bytes | AsyncIterator[bytes],
    ) -> None:
        assert self._client is not None
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = f"http://{target}{raw_path.decode('latin-1')}" + (
            f"?{query.decode('latin-1')}" if query else ""
        )
        exchange.target_started = time.monotonic()
        request = self._client.build_request(scope["method"], url, headers=headers, content=content)
        try:
            response = await self._client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            raise _UpstreamRefused(str(err)) from err
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as err:
            # the target went away with the request on it, before answering (e.g. killed)
            if not isinstance(content, bytes):  # a streamed body cannot be sent again
                await self._error(send, exchange, 502, "TargetResponseError")
                return
            raise _UpstreamRefused(str(err)) from err
        except httpx.TimeoutException:
            await self._error(send, exchange, 504, "TargetTimeout")
            return
        except httpx.HTTPError:
            await self._error(send, exchange, 502, "TargetResponseError")
            return
        exchange.target_answered = time.monotonic()
        exchange.status = response.status_code
        exchange.target_status = str(response.status_code)
        try:
            out_headers = [
                (k.encode("latin-1"), v.encode("latin-1"))
                for k, v in response.headers.multi_items()
                if k.lower() not in HOP_BY_HOP
            ]
            exchange.responding = True
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": out_headers}
            )
            try:
                async for chunk in response.aiter_raw():
                    exchange.sent += len(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as err:  # the target failed mid-response: cut the client off too
                exchange.error = "TargetResponseError"
                log.info("target %s failed while answering: %s", target, err)
                raise
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def _error(self, send: Send, exchange: Exchange, status: int, reason: str) -> None:
        exchange.status, exchange.error = status, reason
        body = _status_text(status)
        exchange.sent = len(body)
        await _respond(send, status, body, "text/html")


def forwarded_headers(
    scope: Scope, headers: list[tuple[str, str]], exchange: Exchange, keep_length: bool
) -> list[tuple[str, str]]:
    """The request's headers as the target gets them: hop-by-hop ones dropped, the client appended to
    `X-Forwarded-For`, `X-Forwarded-Proto/Port` and the trace id set by the load balancer."""
    client = (scope.get("client") or ("", 0))[0]
    out: list[tuple[str, str]] = []
    forwarded_for = ""
    for name, value in headers:
        if name in HOP_BY_HOP or name.startswith("x-forwarded-") or name == "x-amzn-trace-id":
            if name == "x-forwarded-for":
                forwarded_for = value
            continue
        if name == "content-length" and not keep_length:
            continue
        out.append((name, value))
    out.append(("x-forwarded-for", f"{forwarded_for}, {client}" if forwarded_for else client))
    out.append(("x-forwarded-proto", "http"))
    out.append(("x-forwarded-port", str(exchange.listener_port)))
    out.append(("x-amzn-trace-id", exchange.trace_id))
    return out


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the request body; whether that was all of it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


async def _stream_body(head: bytes, receive: Receive, exchange: Exchange) -> AsyncIterator[bytes]:
    if head:
        yield head
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        exchange.received += len(chunk)
        if chunk:
            yield chunk
        if not message.get("more_body"):
            return


async def _respond(send: Send, status: int, body: bytes, content_type: str = "text/plain") -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

"""The proxy subresources: `/api/v1/namespaces/NS/services/NAME/proxy[/PATH]` and
`/api/v1/namespaces/NS/pods/NAME/proxy[/PATH]`, as kube-apiserver serves them to `kubectl get --raw`,
`kubectl proxy` and API clients.

Where a request goes (kube-apiserver's `ResourceLocation`s). NAME is `name`, `name:port` or
`scheme:name:port` (scheme `http` or `https`; 400 `invalid service request "..."` otherwise).
- A Service: a port *number* stands for the Service port of that number (404 when the Service is not
  found, 503 `no service port N found for service "x"` when it has no such port), a port name for itself,
  no port for the unnamed port. The Service's Endpoints (404 `endpoints "x" not found` without them) are
  searched from a random subset and a random address on for a ready address serving that port whose pod
  still has that IP: the pods' `targetPort`, so one ready endpoint picked at random per request. Endpoints
  with no subsets are 503 `no endpoints available for service "x"`; no ready address with the port is the
  same message with NAME as asked (`"x:8080"`).
- A pod: no port is the first container port it declares, a port name the container port of that name
  (upstream would look the name up as a well-known service name); a pod without an IP yet (not scheduled
  or not started) is 400 `address not allowed`. Upstream refuses a pod IP that is not global unicast;
  here pods live on loopback, so it is the other way round: only addresses in 127.0.0.0/8 are dialled,
  any other is `address not allowed`, and nothing the proxy sends leaves the host.

The exchange (apimachinery's UpgradeAwareHandler and proxy transport): `.../proxy` with no path at all is
redirected (301) to `.../proxy/`; the method, the rest of the path (as sent, still percent-encoded), the query
and the body go on as they came (a body of more than 64 KiB streamed), with the request's headers minus the
hop-by-hop ones and `Authorization` (the API server's credentials stop at the API server), plus
`X-Forwarded-Uri` (and `X-Forwarded-For` where the server knows the client's address: not behind
`sim.serving`'s front door, which relays connections to hypercorn over a unix socket). The answer's status,
headers (minus hop-by-hop ones; a `Location` on the backend's own host is rewritten to go through the proxy)
and body come back as they come, flushed chunk by chunk. A backend that cannot be dialled is 503 `error trying
to reach service: dial tcp IP:PORT: connect: connection refused` (Go's words); a backend that fails in the
middle of its answer has the client's connection cut. Not served: protocol upgrades through the proxy
(WebSockets), and upstream's rewriting of links inside HTML pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import os
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from sim.k8s import errors, resources
from sim.k8s.errors import ApiError
from sim.k8s.messages import Receive, Scope, Send
from sim.k8s.store import Obj, Store

log = logging.getLogger(__name__)

PODS = resources.by_key("pods")
SERVICES = resources.by_key("services")
ENDPOINTS = resources.by_key("endpoints")
CONNECT_SECONDS = 10.0
#: A request body up to this size is sent with its head, whole; a longer one is streamed.
BUFFER_BYTES = 64 * 1024
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
SCHEMES = ("", "http", "https")
#: Go's ReverseProxy drops these both ways (with any header `Connection` names), as HTTP/1.1 says.
HOP_BY_HOP = frozenset(
    (
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    )
)
PROXY_PATH = re.compile(
    r"^(?P<prefix>/api/v1/namespaces/(?P<namespace>[^/]+)/(?P<resource>services|pods)/(?P<id>[^/]+)/proxy)"
    r"(?P<path>/.*)?$"
)


@dataclass(frozen=True)
class Target:
    """A proxy request: what it names (`id`: NAME[:PORT] as sent) and the path to pass on ("" for none)."""

    namespace: str
    resource: str  # "services" or "pods"
    id: str
    prefix: str  # the request's path up to and with `/proxy`, as sent
    path: str  # the rest, as sent (percent-encoded)


def match(scope: Scope) -> Target | None:
    """The proxy request `scope` is, or None when it is no proxy request."""
    raw = scope.get("raw_path") or scope["path"].encode()
    found = PROXY_PATH.match(raw.decode("latin-1").split("?", 1)[0])
    if found is None:
        return None
    return Target(
        unquote(found["namespace"]),
        found["resource"],
        unquote(found["id"]),
        found["prefix"],
        found["path"] or "",
    )


@dataclass(frozen=True)
class Location:
    """Where a proxy request is sent: `port` None for the scheme's own."""

    scheme: str
    host: str
    port: int | None

    @property
    def netloc(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


def split_scheme_name_port(id: str) -> tuple[str, str, str] | None:
    """`name`, `name:port` or `scheme:name:port` as (scheme, name, port); None when it is none of those
    (apimachinery's SplitSchemeNamePort)."""
    parts = id.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        return None
    if not name or scheme not in SCHEMES:
        return None
    return scheme, name, port


def _dialable(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in LOOPBACK
    except ValueError:
        return False


def service_location(store: Store, namespace: str, id: str) -> Location:
    """A ready endpoint of Service `id` (NAME[:PORT]) for the port asked, picked at random."""
    split = split_scheme_name_port(id)
    if split is None:
        raise errors.bad_request(f'invalid service request "{id}"')
    scheme, name, port = split
    if port.isdigit():
        service = store.get(SERVICES, namespace, name)
        numbered = [p for p in (service.get("spec") or {}).get("ports") or [] if p.get("port") == int(port)]
        if not numbered:
            raise ApiError(
                503, "ServiceUnavailable", f'no service port {int(port)} found for service "{name}"'
            )
        port = str(numbered[0].get("name") or "")
    endpoints = store.get(ENDPOINTS, namespace, name)
    subsets = endpoints.get("subsets") or []
    if not subsets:
        raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
    first_subset = random.randrange(len(subsets))
    for i in range(len(subsets)):
        subset = subsets[(first_subset + i) % len(subsets)]
        addresses = subset.get("addresses") or []
        if not addresses:
            continue
        for endpoint_port in subset.get("ports") or []:
            if str(endpoint_port.get("name") or "") != port:
                continue
            first_address = random.randrange(len(addresses))
            for j in range(len(addresses)):
                address = addresses[(first_address + j) % len(addresses)]
                if _pod_has_address(store, namespace, address):
                    return Location(scheme or "http", address["ip"], int(endpoint_port["port"]))
    raise ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{id}"')


def _pod_has_address(store: Store, namespace: str, address: Obj) -> bool:
    """Whether the endpoint address is still its pod's (as upstream checks), and one the proxy may dial."""
    ref = address.get("targetRef") or {}
    if ref.get("kind") != "Pod" or ref.get("namespace", namespace) != namespace or not ref.get("name"):
        return False
    try:
        pod = store.get(PODS, namespace, ref["name"])
    except ApiError:
        return False
    ips = {entry.get("ip") for entry in (pod.get("status") or {}).get("podIPs") or []}
    ips.add((pod.get("status") or {}).get("podIP"))
    return address.get("ip") in ips and _dialable(str(address.get("ip")))


def pod_location(store: Store, namespace: str, id: str) -> Location:
    """Pod `id` (NAME[:PORT]) on its IP: the port asked, else the first container port it declares."""
    split = split_scheme_name_port(id)
    if split is None:
        raise errors.bad_request(f'invalid pod request "{id}"')
    scheme, name, port = split
    pod = store.get(PODS, namespace, name)
    if not port:
        declared = [
            p["containerPort"]
            for c in (pod.get("spec") or {}).get("containers") or []
            for p in c.get("ports") or []
        ]
        port = str(declared[0]) if declared else ""
    elif not port.isdigit():  # a container port by name (upstream would look the name up in /etc/services)
        named = [
            p["containerPort"]
            for c in (pod.get("spec") or {}).get("containers") or []
            for p in c.get("ports") or []
            if p.get("name") == port
        ]
        if not named:
            raise errors.bad_request(f'invalid pod request "{id}"')
        port = str(named[0])
    ip = str((pod.get("status") or {}).get("podIP") or "")
    if not _dialable(ip):
        raise errors.bad_request("address not allowed")
    return Location(scheme or "http", ip, int(port) if port else None)


def _unreachable(location: Location, err: Exception, *, dialling: bool) -> ApiError:
    """A backend that could not be reached, in the words of Go's net package under apimachinery's proxy
    transport: `dial tcp IP:PORT: connect: connection refused`, or what broke the exchange after."""
    port = location.port or (443 if location.scheme == "https" else 80)
    cause: BaseException | None = err
    code = None
    while cause is not None and code is None:
        code = cause.errno if isinstance(cause, OSError) else None
        cause = cause.__cause__ or cause.__context__
    if isinstance(err, httpx.TimeoutException):
        why = "i/o timeout"
    elif code == errno.ECONNREFUSED or (dialling and "refused" in str(err).lower()):
        why = "connect: connection refused"
    elif code is not None:
        why = f"{'connect' if dialling else 'read'}: {os.strerror(code).lower()}"
    elif isinstance(err, httpx.RemoteProtocolError):
        why = "EOF"  # the backend closed the connection without an answer
    else:
        why = str(err) or type(err).__name__
    where = f"dial tcp {location.host}:{port}" if dialling else f"tcp {location.host}:{port}"
    return ApiError(503, "ServiceUnavailable", f"error trying to reach service: {where}: {why}")


def _request_headers(scope: Scope, target: Target) -> list[tuple[str, str]]:
    """The client's headers as the backend gets them."""
    headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])]
    named = {n.strip() for name, value in headers if name == "connection" for n in value.lower().split(",")}
    out: list[tuple[str, str]] = []
    forwarded_for = ""
    for name, value in headers:
        if name in HOP_BY_HOP or name in named or name in ("host", "authorization", "x-forwarded-uri"):
            continue
        if name == "x-forwarded-for":
            forwarded_for = value
            continue
        out.append((name, value))
    client = (scope.get("client") or ("", 0))[0]
    if client:
        out.append(("x-forwarded-for", f"{forwarded_for}, {client}" if forwarded_for else client))
    elif forwarded_for:
        out.append(("x-forwarded-for", forwarded_for))
    out.append(("x-forwarded-uri", target.prefix + target.path))
    return out


def _response_headers(
    response: httpx.Response, target: Target, request_host: str
) -> list[tuple[bytes, bytes]]:
    named = {n.strip() for n in response.headers.get("connection", "").lower().split(",")}
    out = []
    for name, value in response.headers.multi_items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in named:
            continue
        if lower == "location":
            value = _rewrite_location(value, target, response.request.url.netloc.decode(), request_host)
        out.append((lower.encode("latin-1"), value.encode("latin-1")))
    return out


def _rewrite_location(location: str, target: Target, backend: str, request_host: str) -> str:
    """A redirect to a path on the backend itself goes through the proxy (apimachinery's rewriteURL)."""
    url = urlsplit(location)
    if (url.netloc and url.netloc not in (backend, request_host)) or not url.path.startswith("/"):
        return location
    if url.path.startswith(target.prefix):
        return urlunsplit(("", "", url.path, url.query, url.fragment))
    return urlunsplit(("", "", target.prefix + url.path, url.query, url.fragment))


async def _send_status(send: Send, err: ApiError) -> None:
    body = json.dumps(err.status(), separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": err.code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Proxy:
    """Serves proxy requests for one API server; one connection pool to the backends, closed by `close`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._client: httpx.AsyncClient | None = None

    def locate(self, target: Target) -> Location:
        if target.resource == "services":
            return service_location(self.store, target.namespace, target.id)
        return pod_location(self.store, target.namespace, target.id)

    async def serve(self, scope: Scope, receive: Receive, send: Send, target: Target) -> None:
        """Answer one proxy request (an ASGI http scope `match` took)."""
        try:
            location = self.locate(target)
        except ApiError as err:
            await _send_status(send, err)
            return
        if not target.path:
            query = scope.get("query_string", b"").decode("latin-1")
            redirect = target.prefix + "/" + (f"?{query}" if query else "")
            moved = [(b"location", redirect.encode("latin-1")), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 301, "headers": moved})
            await send({"type": "http.response.body", "body": b""})
            return
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{location.scheme}://{location.netloc}{target.path}" + (f"?{query}" if query else "")
        headers = _request_headers(scope, target)
        content = await _body(receive)
        if isinstance(content, bytes):  # whole: its own length; streamed: the client's length, else chunked
            headers = [(k, v) for k, v in headers if k != "content-length"]
        client = self._connect()
        request = client.build_request(scope["method"], url, headers=headers, content=content)
        try:
            response = await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:
            await _send_status(send, _unreachable(location, err, dialling=True))
            return
        except httpx.HTTPError as err:
            log.info("proxy to %s failed before an answer: %s", url, err)
            await _send_status(send, _unreachable(location, err, dialling=False))
            return
        request_host = next(
            (v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"host"), ""
        )
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": _response_headers(response, target, request_host),
                }
            )
            streaming = asyncio.ensure_future(_relay(response, send))
            gone = asyncio.ensure_future(_until_disconnect(receive))
            try:
                await asyncio.wait({streaming, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (streaming, gone):
                    task.cancel()
                await asyncio.gather(streaming, gone, return_exceptions=True)
            if streaming.done() and not streaming.cancelled() and streaming.exception() is not None:
                log.info("backend %s failed in the middle of its answer: %s", url, streaming.exception())
        finally:
            await response.aclose()

    def _connect(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                trust_env=False,
                verify=False,  # as kube-apiserver's proxy transport: backends' certificates are not checked
                follow_redirects=False,
                timeout=httpx.Timeout(None, connect=CONNECT_SECONDS),
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def _body(receive: Receive) -> bytes | AsyncIterator[bytes]:
    """The request body: whole when it is no longer than `BUFFER_BYTES` (as Go's transport buffers a
    small request, so that the backend gets the head and body at once, and one that answers before reading
    the body does not reset a connection with the body still on its way); a stream of it otherwise."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = bytes(message.get("body", b""))
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)
        if size > BUFFER_BYTES:
            break

    async def rest() -> AsyncIterator[bytes]:
        yield b"".join(chunks)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if message.get("body"):
                yield message["body"]
            if not message.get("more_body"):
                return

    return rest()


async def _relay(response: httpx.Response, send: Send) -> None:
    """The backend's body to the client as it comes; the answer is ended only when the body was whole
    (otherwise the server cuts the client's connection)."""
    async for chunk in response.aiter_raw():
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _until_disconnect(receive: Receive) -> None:
    with contextlib.suppress(Exception):
        while (await receive())["type"] != "http.disconnect":
            pass

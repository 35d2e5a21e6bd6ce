"""The streaming subresources `pods/NAME/exec` and `pods/NAME/portforward`, over WebSockets.

Exec speaks the channel protocol (`v5.channel.k8s.io`, `v4.channel.k8s.io`): every binary message is one
channel byte and its data; 0 is stdin, 1 stdout, 2 stderr, 3 the error channel (one `Status` when the
command has ended: `Success`, or `NonZeroExitCode` with an `ExitCode` cause, as the API server reports it),
4 the terminal size (ignored); in v5, 255 closes a channel (the client's end of stdin). When the client
goes away, the command's session is killed.

Port-forward speaks what kubectl 1.30 sends with `KUBECTL_PORT_FORWARD_WEBSOCKETS=true`: SPDY/3.1
tunnelled in WebSocket binary messages (`SPDY/3.1+portforward.k8s.io`, see `spdy`); and, for the Python
client's `portforward()`, the channel protocol (`v4.channel.k8s.io` with `?ports=`): per port a data and
an error channel, each opened by a frame holding the port number.

Not served, and why: the SPDY upgrade itself (kubectl's exec fallback and its default port-forward). An
ASGI server hands an application HTTP requests and WebSocket messages, never the raw connection after a
`101 Switching Protocols`, so a SPDY session cannot be spoken over hypercorn. Such a request gets a 400
`Status` saying so (after the same checks as a WebSocket request, so a wrong container or a pod that does
not run still gets its own message: kubectl falls back to SPDY when the WebSocket handshake is refused,
and shows the message of that second answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qs

from sim.k8s import errors, resources, spdy
from sim.k8s.errors import ApiError
from sim.k8s.store import Obj, Store

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
CHANNEL_PORT_FORWARD_PROTOCOL = "v4.channel.k8s.io"
#: kubectl's tunnelled SPDY first; the channel protocol is what the Python client's `portforward` speaks.
PORT_FORWARD_PROTOCOLS = (spdy.TUNNEL_PROTOCOL, CHANNEL_PORT_FORWARD_PROTOCOL)
STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255  # 4, the terminal size, is ignored
READ_CHUNK = 32 * 1024
DRAIN_SECONDS = 2.0
PODS = resources.by_key("pods")


class ExecProcess(Protocol):
    """A command running in a container (`sim.kubelet.exec.ExecProcess`)."""

    stdin: asyncio.StreamWriter | None
    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader | None

    async def wait(self) -> int: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...


class PodStreams(Protocol):
    """What the node side offers the wire (the node agent implements it); errors are `ApiError`s."""

    def exec_container(self, pod: Obj, container: str | None) -> str:
        """The container to exec in (the only one when `container` is not given), checked to run."""
        ...

    async def exec(
        self, pod: Obj, container: str, command: Sequence[str], stdin: bool, tty: bool
    ) -> ExecProcess: ...

    async def open_port(self, pod: Obj, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


def frame(channel: int, data: bytes = b"") -> bytes:
    """One channel-protocol message."""
    return bytes((channel,)) + data


def exit_status(code: int) -> Obj:
    """The error channel's Status for a command that exited with `code`."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error_status(message: str) -> Obj:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: error executing command in container: {message}",
        "reason": "InternalError",
        "code": 500,
    }


def spdy_refusal(sub: str) -> ApiError:
    """The answer to a SPDY upgrade (or a plain request) once the request itself was found valid."""
    how = "KUBECTL_PORT_FORWARD_WEBSOCKETS=true" if sub == "portforward" else "WebSockets (kubectl's default)"
    return errors.bad_request(
        f"pods/{sub} is served over WebSockets only: this API server cannot take a SPDY upgrade; use {how}"
    )


def check_request(streams: PodStreams | None, pod: Obj, sub: str, query: dict[str, list[str]]) -> str | None:
    """Check an exec or port-forward request before any upgrade: the container for exec (else None)."""
    if streams is None:
        raise errors.bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")
    if sub == "exec":
        if not query.get("command"):
            raise errors.bad_request("you must specify at least one command for the container")
        return streams.exec_container(pod, _first(query, "container"))
    first = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name")
    streams.exec_container(pod, first)  # the pod runs
    return None


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (_first(query, name) or "").lower() in ("1", "true")


class WebSocket:
    """The ASGI WebSocket of one request: accept or refuse it (with a Status), then bytes in and out."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.closed = False

    @property
    def subprotocols(self) -> list[str]:
        return list(self.scope.get("subprotocols") or [])

    async def accept(self, subprotocol: str) -> None:
        await self._send({"type": "websocket.accept", "subprotocol": subprotocol})

    async def refuse(self, error: ApiError) -> None:
        body = json.dumps(error.status()).encode()
        await self._send(
            {
                "type": "websocket.http.response.start",
                "status": error.code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await self._send({"type": "websocket.http.response.body", "body": body})

    async def send_bytes(self, data: bytes) -> None:
        if not self.closed:
            await self._send({"type": "websocket.send", "bytes": data})

    async def receive_bytes(self) -> bytes | None:
        """The next message's bytes (text as UTF-8); None once the client has gone."""
        while not self.closed:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self.closed = True
                return None
            if message["type"] == "websocket.receive":
                if message.get("bytes") is not None:
                    return bytes(message["bytes"])
                return str(message.get("text") or "").encode()
        return None

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                await self._send({"type": "websocket.close", "code": 1000})


def _pod_route(path: str) -> tuple[str, str, str] | None:
    """(namespace, pod, subresource) of `/api/v1/namespaces/NS/pods/NAME/SUB`, else None."""
    parts = path.strip("/").split("/")
    if len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
        return parts[3], parts[5], parts[6]
    return None


async def serve_websocket(
    scope: Scope, receive: Receive, send: Send, store: Store, streams: PodStreams | None
) -> None:
    """One WebSocket request to the API server: exec or port-forward into a pod, else refused."""
    ws = WebSocket(scope, receive, send)
    if (await receive())["type"] != "websocket.connect":
        return
    route = _pod_route(scope["path"])
    if route is None or route[2] not in ("exec", "portforward"):
        await ws.refuse(ApiError(404, "NotFound", "the server could not find the requested resource"))
        return
    namespace, name, sub = route
    query = parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True)
    served = EXEC_PROTOCOLS if sub == "exec" else PORT_FORWARD_PROTOCOLS
    offered = [p for p in ws.subprotocols if p in served]
    try:
        pod = store.get(PODS, namespace, name)
        container = check_request(streams, pod, sub, query)
        if not offered:
            raise errors.bad_request(
                f"pods/{sub} over WebSockets needs the subprotocol {' or '.join(served)}, "
                f"not {', '.join(ws.subprotocols) or 'none'}"
            )
        channel_forward = sub == "portforward" and offered[0] == CHANNEL_PORT_FORWARD_PROTOCOL
        ports = _ports(query) if channel_forward else []
    except ApiError as err:
        await ws.refuse(err)
        return
    assert streams is not None
    await ws.accept(offered[0])
    try:
        if sub == "exec":
            assert container is not None
            await _exec(ws, streams, pod, container, query, offered[0])
        elif ports:
            await _channel_port_forward(ws, streams, pod, ports)
        else:
            await spdy.serve_port_forward(
                ws.send_bytes, ws.receive_bytes, lambda port: streams.open_port(pod, port)
            )
    finally:
        await ws.close()


def _ports(query: dict[str, list[str]]) -> list[int]:
    """The `ports` of a channel-protocol port-forward (repeated or comma-separated)."""
    texts = [p.strip() for value in query.get("ports") or [] for p in value.split(",") if p.strip()]
    if not texts or not all(t.isdigit() and 0 < int(t) < 65536 for t in texts):
        raise errors.bad_request(f"invalid or missing ports: {', '.join(texts) or 'none'}")
    return [int(t) for t in texts]


async def _channel_port_forward(ws: WebSocket, streams: PodStreams, pod: Obj, ports: list[int]) -> None:
    """One connection per port: channel 2i is its data, 2i+1 its errors, each opened with the port
    number (2 bytes, little-endian); the session ends when every connection has closed or the client
    has gone (this protocol has no half-close)."""
    writers: dict[int, asyncio.StreamWriter] = {}
    pumps = []
    for index, port in enumerate(ports):
        data, error = 2 * index, 2 * index + 1
        await ws.send_bytes(frame(data, struct.pack("<H", port)))
        await ws.send_bytes(frame(error, struct.pack("<H", port)))
        try:
            reader, writers[data] = await streams.open_port(pod, port)
        except (ApiError, OSError) as err:
            why = err.message if isinstance(err, ApiError) else str(err)
            await ws.send_bytes(frame(error, f"error forwarding port {port} to pod: {why}".encode()))
            continue
        pumps.append(asyncio.create_task(_pump(reader, data, ws)))
    inbound: asyncio.Future[Any] = asyncio.create_task(_to_ports(ws, writers))
    remote: asyncio.Future[Any] = asyncio.gather(*pumps)
    try:
        await asyncio.wait({inbound, remote}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (inbound, remote, *pumps):
            task.cancel()
        await asyncio.gather(inbound, remote, *pumps, return_exceptions=True)
        for writer in writers.values():
            writer.close()


async def _to_ports(ws: WebSocket, writers: dict[int, asyncio.StreamWriter]) -> None:
    while (message := await ws.receive_bytes()) is not None:
        writer = writers.get(message[0]) if message else None
        if writer is not None and len(message) > 1:
            with contextlib.suppress(ConnectionError):
                writer.write(message[1:])
                await writer.drain()


async def _exec(
    ws: WebSocket, streams: PodStreams, pod: Obj, container: str, query: dict[str, list[str]], protocol: str
) -> None:
    stdin, tty = _flag(query, "stdin"), _flag(query, "tty")
    try:
        process = await streams.exec(pod, container, query["command"], stdin, tty)
    except ApiError as err:
        await ws.send_bytes(frame(ERROR, json.dumps(internal_error_status(err.message)).encode()))
        return
    outputs = [asyncio.create_task(_pump(process.stdout, STDOUT, ws, _flag(query, "stdout")))]
    if process.stderr is not None:
        outputs.append(asyncio.create_task(_pump(process.stderr, STDERR, ws, _flag(query, "stderr"))))
    inputs = asyncio.create_task(_feed_stdin(ws, process, protocol == "v5.channel.k8s.io", tty))
    exited = asyncio.create_task(process.wait())
    try:
        await asyncio.wait({exited, inputs}, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():  # the client went away: no orphan
            process.kill()
            await exited
            return
        code = exited.result()
        process.kill()  # what it left running in its session, which would hold its pipes open
        await asyncio.wait(outputs, timeout=DRAIN_SECONDS)
        await ws.send_bytes(frame(ERROR, json.dumps(exit_status(code)).encode()))
    finally:
        process.kill()
        for task in (*outputs, inputs, exited):
            task.cancel()
        await asyncio.gather(*outputs, inputs, exited, return_exceptions=True)
        process.close()


async def _pump(stream: asyncio.StreamReader, channel: int, ws: WebSocket, wanted: bool = True) -> None:
    """Copy `stream` to `channel` until its end (output the client did not ask for is read and dropped)."""
    while True:
        try:
            chunk = await stream.read(READ_CHUNK)
        except OSError:  # a pty's master reads EIO once the command's side is closed
            return
        if not chunk:
            return
        if wanted:
            await ws.send_bytes(frame(channel, chunk))


async def _feed_stdin(ws: WebSocket, process: ExecProcess, v5: bool, tty: bool) -> None:
    """Client messages until the client goes away: stdin to the command, the rest ignored."""
    while (message := await ws.receive_bytes()) is not None:
        if not message:
            continue
        channel, data = message[0], message[1:]
        writer = process.stdin
        if channel == STDIN and data and writer is not None:
            with contextlib.suppress(ConnectionError):
                writer.write(data)
                await writer.drain()
        elif v5 and channel == CLOSE and data[:1] == bytes((STDIN,)) and writer is not None:
            with contextlib.suppress(ConnectionError, OSError):
                if tty:
                    writer.write(b"\x04")  # a terminal's end of input
                    await writer.drain()
                else:
                    writer.write_eof()

"""The streaming subresources `pods/NAME/exec` and `pods/NAME/portforward`, over WebSockets and SPDY.

Over WebSockets (kubectl's exec, the Python client's `stream` and `portforward`, kubectl 1.31's
port-forward): exec speaks the channel protocol (`v5.channel.k8s.io`, `v4.channel.k8s.io`): every binary
message is one channel byte and its data; 0 is stdin, 1 stdout, 2 stderr, 3 the error channel (one `Status`
when the command has ended: `Success`, or `NonZeroExitCode` with an `ExitCode` cause, as the API server
reports it), 4 the terminal size (ignored); in v5, 255 closes a channel (the client's end of stdin).
Port-forward speaks SPDY/3.1 tunnelled in the WebSocket's binary messages (`SPDY/3.1+portforward.k8s.io`,
see `spdy`) or, for the Python client, the channel protocol (`v4.channel.k8s.io` with `?ports=`): per
port a data and an error channel, each opened by a frame holding the port number.

Over SPDY (kubectl 1.30's port-forward, and its exec when WebSockets are refused or turned off): an HTTP/1.1
`Upgrade: SPDY/3.1` request, which the API server's front door (`sim.serving`) hands to `serve_spdy` with
its raw connection. Port-forward negotiates `portforward.k8s.io`, exec `v4.channel.k8s.io` (the client
opens one SPDY stream each for error, stdin, stdout, stderr and the terminal size, as it asked for them;
the error stream carries the same `Status` as the error channel).

Every request is checked before any upgrade, with the API server's answers as a `Status`: the pod exists,
has a host and runs, the container is valid, a protocol both sides speak. When the client goes away, an
exec'd command's session is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs

from sim.k8s import errors, resources, spdy
from sim.k8s.errors import ApiError
from sim.k8s.store import Obj, Store
from sim.serving import RequestHead

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
CHANNEL_PORT_FORWARD_PROTOCOL = "v4.channel.k8s.io"
#: kubectl's tunnelled SPDY first; the channel protocol is what the Python client's `portforward` speaks.
PORT_FORWARD_PROTOCOLS = (spdy.TUNNEL_PROTOCOL, CHANNEL_PORT_FORWARD_PROTOCOL)
#: What a SPDY upgrade may negotiate (`X-Stream-Protocol-Version`), per subresource.
SPDY_PROTOCOLS = {"exec": ("v4.channel.k8s.io",), "portforward": (spdy.PORT_FORWARD_PROTOCOL,)}
STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255  # 4, the terminal size, is ignored
READ_CHUNK = 32 * 1024
DRAIN_SECONDS = 2.0
#: How long the client of a SPDY exec has to open the streams it asked for (the kubelet's default).
STREAM_CREATION_SECONDS = 30.0
#: How long a SPDY exec waits for its client to close the connection once everything is sent: closing
#: first with the client's frames unread would reset the connection, and could lose the end of the output.
CLIENT_CLOSE_SECONDS = 5.0
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


def upgrade_required(headers: dict[str, str]) -> ApiError:
    """The answer to exec or port-forward as a plain request (found valid otherwise), as the API server's;
    a SPDY upgrade gets here only as a connection's second request, which nothing upgrades."""
    if spdy.UPGRADE in headers.get("upgrade", "").lower():
        return errors.bad_request("a SPDY upgrade is taken only as the first request of its connection")
    return errors.bad_request("Upgrade request required")


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

    async def send(self, data: bytes) -> None:
        if not self.closed:
            await self._send({"type": "websocket.send", "bytes": data})

    async def receive(self) -> bytes | None:
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
            v5 = offered[0] == "v5.channel.k8s.io"
            await _exec(_WebSocketExec(ws, query, v5), streams, pod, container, query)
        elif ports:
            await _channel_port_forward(ws, streams, pod, ports)
        else:
            await spdy.serve_port_forward(ws, lambda port: streams.open_port(pod, port))
    finally:
        await ws.close()


def claims_spdy(head: RequestHead) -> bool:
    """Whether `head` asks for a SPDY upgrade (answered by `serve_spdy`, whatever its path)."""
    return spdy.UPGRADE in head.upgrade.split(",")


async def serve_spdy(
    head: RequestHead,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    store: Store,
    streams: PodStreams | None,
) -> None:
    """A SPDY upgrade to the API server, on its raw connection: exec or port-forward into a pod, after
    the same checks as a WebSocket request; else refused with a Status."""
    route = _pod_route(head.path)
    query = parse_qs(head.query, keep_blank_values=True)
    try:
        if route is None or route[2] not in SPDY_PROTOCOLS:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace, name, sub = route
        pod = store.get(PODS, namespace, name)
        container = check_request(streams, pod, sub, query)
        protocol = _negotiate(head.values("x-stream-protocol-version"), SPDY_PROTOCOLS[sub])
    except ApiError as err:
        body = json.dumps(err.status()).encode()
        writer.write(
            f"HTTP/1.1 {err.code} {HTTPStatus(err.code).phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        return
    assert streams is not None
    writer.write(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
        f"X-Stream-Protocol-Version: {protocol}\r\n\r\n".encode()
    )
    await writer.drain()
    transport = spdy.StreamTransport(reader, writer)
    if sub == "portforward":
        await spdy.serve_port_forward(transport, lambda port: streams.open_port(pod, port))
    else:
        assert container is not None
        await _spdy_exec(transport, streams, pod, container, query)


def _negotiate(offered: list[str], served: Sequence[str]) -> str:
    """The client's first protocol that we serve, or the 403 the API server answers."""
    for protocol in offered:
        if protocol in served:
            return protocol
    raise ApiError(
        403,
        "Forbidden",
        f"unable to upgrade: unable to negotiate protocol: client supports {offered}, server accepts "
        f"{list(served)}",
    )


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
        await ws.send(frame(data, struct.pack("<H", port)))
        await ws.send(frame(error, struct.pack("<H", port)))
        try:
            reader, writers[data] = await streams.open_port(pod, port)
        except (ApiError, OSError) as err:
            why = err.message if isinstance(err, ApiError) else str(err)
            await ws.send(frame(error, f"error forwarding port {port} to pod: {why}".encode()))
            continue
        pumps.append(asyncio.create_task(_pump(reader, _channel_sender(ws, data))))
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


def _channel_sender(ws: WebSocket, channel: int) -> Callable[[bytes], Awaitable[None]]:
    async def send(data: bytes) -> None:
        await ws.send(frame(channel, data))

    return send


async def _to_ports(ws: WebSocket, writers: dict[int, asyncio.StreamWriter]) -> None:
    while (message := await ws.receive()) is not None:
        writer = writers.get(message[0]) if message else None
        if writer is not None and len(message) > 1:
            with contextlib.suppress(ConnectionError):
                writer.write(message[1:])
                await writer.drain()


# -- exec


class ExecChannels(Protocol):
    """How an exec reaches its client: WebSocket channels or SPDY streams."""

    def output(self, channel: int) -> Callable[[bytes], Awaitable[None]] | None:
        """Where the command's STDOUT or STDERR goes; None when the client did not ask for it."""
        ...

    async def feed(self, process: ExecProcess) -> None:
        """The client's input to the command, until the client has gone."""
        ...

    async def finish(self, status: Obj) -> None:
        """The end of the output, and the error channel's `Status`."""
        ...


async def _exec(
    channels: ExecChannels, streams: PodStreams, pod: Obj, container: str, query: dict[str, list[str]]
) -> None:
    stdin, tty = _flag(query, "stdin"), _flag(query, "tty")
    try:
        process = await streams.exec(pod, container, query["command"], stdin, tty)
    except ApiError as err:
        await channels.finish(internal_error_status(err.message))
        return
    outputs = [asyncio.create_task(_pump(process.stdout, channels.output(STDOUT)))]
    if process.stderr is not None:
        outputs.append(asyncio.create_task(_pump(process.stderr, channels.output(STDERR))))
    inputs = asyncio.create_task(channels.feed(process))
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
        await channels.finish(exit_status(code))
    finally:
        process.kill()
        for task in (*outputs, inputs, exited):
            task.cancel()
        await asyncio.gather(*outputs, inputs, exited, return_exceptions=True)
        process.close()


async def _pump(stream: asyncio.StreamReader, send: Callable[[bytes], Awaitable[None]] | None) -> None:
    """Copy `stream` to `send` until its end (with no `send`, what it reads is dropped)."""
    while True:
        try:
            chunk = await stream.read(READ_CHUNK)
        except OSError:  # a pty's master reads EIO once the command's side is closed
            return
        if not chunk:
            return
        if send is not None:
            await send(chunk)


async def _end_stdin(process: ExecProcess, tty: bool) -> None:
    writer = process.stdin
    if writer is None:
        return
    with contextlib.suppress(ConnectionError, OSError):
        if tty:
            writer.write(b"\x04")  # a terminal's end of input
            await writer.drain()
        else:
            writer.write_eof()


class _WebSocketExec:
    """Exec over the channel protocol: output as STDOUT and STDERR messages (as the query asked), stdin
    from STDIN messages (v5: its end from a CLOSE message), the Status on ERROR."""

    def __init__(self, ws: WebSocket, query: dict[str, list[str]], v5: bool) -> None:
        self.ws = ws
        self.query = query
        self.v5 = v5

    def output(self, channel: int) -> Callable[[bytes], Awaitable[None]] | None:
        wanted = _flag(self.query, "stdout" if channel == STDOUT else "stderr")
        return _channel_sender(self.ws, channel) if wanted else None

    async def feed(self, process: ExecProcess) -> None:
        while (message := await self.ws.receive()) is not None:
            if not message:
                continue
            channel, data = message[0], message[1:]
            writer = process.stdin
            if channel == STDIN and data and writer is not None:
                with contextlib.suppress(ConnectionError):
                    writer.write(data)
                    await writer.drain()
            elif self.v5 and channel == CLOSE and data[:1] == bytes((STDIN,)):
                await _end_stdin(process, _flag(self.query, "tty"))

    async def finish(self, status: Obj) -> None:
        await self.ws.send(frame(ERROR, json.dumps(status).encode()))


class _SpdyExec:
    """Exec over SPDY streams: one per output, stdin's (its FIN the input's end), the error stream for
    the Status; the client has gone when the session is over."""

    def __init__(self, opened: dict[str, spdy.Stream], session: asyncio.Task[None], tty: bool) -> None:
        self.opened = opened
        self.session = session
        self.tty = tty

    def output(self, channel: int) -> Callable[[bytes], Awaitable[None]] | None:
        stream = self.opened.get("stdout" if channel == STDOUT else "stderr")
        return stream.write if stream is not None else None

    async def feed(self, process: ExecProcess) -> None:
        stdin = self.opened.get("stdin")
        if stdin is not None:
            while (data := await stdin.read()) is not None:
                if process.stdin is not None:
                    with contextlib.suppress(ConnectionError):
                        process.stdin.write(data)
                        await process.stdin.drain()
            await _end_stdin(process, self.tty)
        await asyncio.shield(self.session)

    async def finish(self, status: Obj) -> None:
        with contextlib.suppress(Exception):  # the client may have gone
            for kind in ("stdout", "stderr"):
                if kind in self.opened:
                    await self.opened[kind].end()
            await self.opened["error"].write(json.dumps(status).encode())
            await self.opened["error"].end()


async def _spdy_exec(
    transport: spdy.Transport, streams: PodStreams, pod: Obj, container: str, query: dict[str, list[str]]
) -> None:
    """Wait for the streams the client asked for (as client-go opens them), run the command, then give
    the client time to close the connection itself."""
    tty = _flag(query, "tty")
    asked = {"stdin": _flag(query, "stdin"), "stdout": _flag(query, "stdout"), "resize": tty}
    asked["stderr"] = _flag(query, "stderr") and not tty  # a terminal's output is all stdout
    expected = {"error", *(name for name, wanted in asked.items() if wanted)}
    opened: dict[str, spdy.Stream] = {}
    all_open = asyncio.Event()

    async def on_stream(stream: spdy.Stream) -> None:
        opened[stream.kind] = stream
        if expected <= opened.keys():
            all_open.set()

    session = asyncio.create_task(spdy.Session(transport, on_stream).run(), name="spdy exec")
    try:
        waiting = asyncio.create_task(all_open.wait())
        await asyncio.wait(
            {waiting, session}, timeout=STREAM_CREATION_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        if all_open.is_set():
            await _exec(_SpdyExec(opened, session, tty), streams, pod, container, query)
            await asyncio.wait({session}, timeout=CLIENT_CLOSE_SECONDS)
        elif not session.done():
            log.warning("SPDY exec: the client did not open the streams %s", sorted(expected - opened.keys()))
    finally:
        session.cancel()
        await asyncio.gather(session, return_exceptions=True)

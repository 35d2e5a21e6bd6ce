"""SPDY/3.1 sessions, the server side: kubectl's `port-forward` (and `exec`'s fallback) speak it.

A session runs over a `Transport`, a byte stream both ways: the raw connection after kubectl's HTTP/1.1
`Upgrade: SPDY/3.1` (taken by the API server's front door, `sim.serving`), or WebSocket binary messages
(kubectl 1.31 on, or 1.30 with `KUBECTL_PORT_FORWARD_WEBSOCKETS=true`, tunnels SPDY in a WebSocket with the
subprotocol `SPDY/3.1+portforward.k8s.io`, client-go's `TunnelingConnection`: the messages are one byte
stream). The client opens every stream (SYN_STREAM, headers `streamtype` and more); the session answers
each with a SYN_REPLY and hands it to its handler. PINGs are echoed; SETTINGS, WINDOW_UPDATE and HEADERS
are read and ignored; a GOAWAY, the connection's end or a protocol error ends the session.

Port-forward (`PortForward`): for each local connection the client opens two streams with the headers
`streamtype` (`error`, then `data`), `port` and `requestid`; the server connects the data stream to the
pod's port and copies both ways (a FIN from the client is a half-close towards the pod), then ends the
data stream and the error stream (whose text, if any, is the error kubectl shows).

Header blocks are zlib streams (one per direction for the whole session) primed with the SPDY/3
dictionary; a block is one SYNC_FLUSH.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from sim.k8s.errors import ApiError

log = logging.getLogger(__name__)

UPGRADE = "spdy/3.1"
PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR = 1
CHUNK = 32 * 1024
HALF_CLOSE_SECONDS = 5.0  # how long the client may keep sending after the pod's side has closed

_WORDS = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
#: The SPDY/3 header-compression dictionary (draft 3, section 2.6.10.1): length-prefixed words, then text.
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()

Opener = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3."""


class Transport(Protocol):
    """A byte stream both ways: what a SPDY session runs over."""

    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> bytes | None:
        """The next bytes from the client; None once it has gone."""
        ...


class StreamTransport:
    """A raw connection (after the `101 Switching Protocols`) as a `Transport`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def receive(self) -> bytes | None:
        try:
            return await self._reader.read(CHUNK) or None
        except OSError:
            return None


def control_frame(kind: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


def encode_headers(headers: dict[str, str]) -> bytes:
    """An uncompressed name/value block."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        for text in (name.lower(), value):
            raw = text.encode()
            out.append(struct.pack(">I", len(raw)) + raw)
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, str]:
    """A name/value block (several values of a name, NUL-separated, become the first)."""
    try:
        (count,) = struct.unpack_from(">I", block)
        offset, headers = 4, {}
        for _ in range(count):
            texts = []
            for _ in range(2):
                (size,) = struct.unpack_from(">I", block, offset)
                texts.append(block[offset + 4 : offset + 4 + size].decode())
                offset += 4 + size
            headers[texts[0].lower()] = texts[1].split("\x00")[0]
    except (struct.error, UnicodeDecodeError) as err:
        raise ProtocolError(f"bad header block: {err}") from err
    return headers


class Stream:
    """One stream the client opened: its headers; what the client sends on it; what we send back."""

    def __init__(self, session: Session, stream_id: int, headers: dict[str, str]) -> None:
        self.id = stream_id
        self.headers = headers
        self.kind = headers.get("streamtype", "")
        self.session = session
        self._inbound: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._ended = False  # our side: FIN sent
        self._finished = False  # the client's side: FIN or reset received

    async def read(self) -> bytes | None:
        """The client's next data on this stream; None once it has ended it (or the session is over)."""
        if self._finished and self._inbound.empty():
            return None
        return await self._inbound.get()

    def received(self, data: bytes, fin: bool) -> None:
        if self._finished:
            return
        if data:
            self._inbound.put_nowait(data)
        if fin:
            self.finish()

    def finish(self) -> None:
        """No more data from the client."""
        if not self._finished:
            self._finished = True
            self._inbound.put_nowait(None)

    async def write(self, data: bytes) -> None:
        if data and not self._ended:
            await self.session.send(data_frame(self.id, data))

    async def end(self) -> None:
        """Our FIN on this stream (once)."""
        if not self._ended:
            self._ended = True
            await self.session.send(data_frame(self.id, b"", fin=True))


StreamHandler = Callable[[Stream], Awaitable[None]]


class Session:
    """One SPDY/3.1 server session over `transport`: `run()` reads the client's frames until it goes;
    each stream the client opens is answered and handed to `on_stream` (which must not block)."""

    def __init__(self, transport: Transport, on_stream: StreamHandler) -> None:
        self._transport = transport
        self._on_stream = on_stream
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
        self._lock = asyncio.Lock()
        self.streams: dict[int, Stream] = {}
        self.gone_away = False

    async def send(self, frame: bytes) -> None:
        async with self._lock:
            await self._transport.send(frame)

    async def run(self) -> None:
        """Until the client closes the connection, sends GOAWAY or breaks the protocol; then every stream
        reads its end."""
        try:
            while not self.gone_away and (data := await self._transport.receive()) is not None:
                await self.feed(data)
        except ProtocolError as err:
            log.warning("SPDY session ended: %s", err)
        finally:
            for stream in self.streams.values():
                stream.finish()

    async def feed(self, data: bytes) -> None:
        """Handle every whole frame in the bytes received so far."""
        self._buffer += data
        while len(self._buffer) >= 8:
            (length,) = struct.unpack_from(">I", self._buffer, 4)
            size = 8 + (length & 0xFFFFFF)
            if len(self._buffer) < size:
                return
            raw = bytes(self._buffer[:size])
            del self._buffer[:size]
            await self._frame(raw)

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            return decode_headers(self._inflate.decompress(block))
        except zlib.error as err:
            raise ProtocolError(f"bad compressed header block: {err}") from err

    async def _frame(self, raw: bytes) -> None:
        first, second, length_flags = struct.unpack_from(">HHI", raw)
        flags, payload = length_flags >> 24, raw[8:]
        if not first & 0x8000:  # a data frame
            stream = self.streams.get(((first << 16) | second) & 0x7FFFFFFF)
            if stream is not None:
                stream.received(payload, bool(flags & FLAG_FIN))
            return
        if first & 0x7FFF != VERSION:
            raise ProtocolError(f"SPDY version {first & 0x7FFF} is not spoken here")
        if second == SYN_STREAM:
            (stream_id,) = struct.unpack_from(">I", payload)
            await self._open(stream_id & 0x7FFFFFFF, self._headers(payload[10:]), bool(flags & FLAG_FIN))
        elif second == HEADERS:
            self._headers(payload[4:])
        elif second == RST_STREAM:
            (stream_id,) = struct.unpack_from(">I", payload)
            reset = self.streams.pop(stream_id & 0x7FFFFFFF, None)
            if reset is not None:
                reset.finish()
        elif second == PING:
            await self.send(raw)
        elif second == GOAWAY:
            self.gone_away = True

    async def _open(self, stream_id: int, headers: dict[str, str], fin: bool) -> None:
        async with self._lock:  # the compressor's state and the frames' order go together
            block = self._deflate.compress(encode_headers({})) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            await self._transport.send(control_frame(SYN_REPLY, struct.pack(">I", stream_id) + block))
        stream = Stream(self, stream_id, headers)
        self.streams[stream_id] = stream
        if fin:
            stream.finish()
        await self._on_stream(stream)

    async def refuse(self, stream: Stream) -> None:
        """Reset a stream this session's handler does not serve."""
        self.streams.pop(stream.id, None)
        await self.send(control_frame(RST_STREAM, struct.pack(">II", stream.id, RST_PROTOCOL_ERROR)))

    def forget(self, stream: Stream) -> None:
        self.streams.pop(stream.id, None)


class PortForward:
    """The port-forward handler of a session: each data stream is copied to and from a new connection
    to the pod's port, and reports its end on the error stream of the same `requestid`."""

    def __init__(self, open_port: Opener) -> None:
        self._open_port = open_port
        self._errors: dict[str, Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_stream(self, stream: Stream) -> None:
        if stream.kind == "error":
            self._errors[stream.headers.get("requestid", "")] = stream
        elif stream.kind == "data":
            port = stream.headers.get("port", "")
            task = asyncio.create_task(self._forward(stream, port), name=f"port-forward {port}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            await stream.session.refuse(stream)

    async def _forward(self, stream: Stream, port_text: str) -> None:
        """Connect the data stream to the pod's port, copy both ways, then end both streams."""
        error = ""
        try:
            port = int(port_text)
            reader, writer = await self._open_port(port)
        except (ValueError, OSError) as err:
            error = f"error forwarding port {port_text} to pod: {err}"
        except ApiError as err:  # the pod stopped running: the client must hear why
            error = f"error forwarding port {port_text} to pod: {err.message}"
        if error:
            await self._end(stream, error)
            return
        upstream = asyncio.create_task(_to_pod(stream, writer))
        try:
            while chunk := await reader.read(CHUNK):
                await stream.write(chunk)
        except OSError as err:
            log.debug("port-forward %s: %s", port_text, err)
        finally:
            await self._end(stream, "")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HALF_CLOSE_SECONDS):
                    await asyncio.shield(upstream)
            upstream.cancel()
            await asyncio.gather(upstream, return_exceptions=True)
            writer.close()

    async def _end(self, stream: Stream, error: str) -> None:
        """FIN on the data stream, then the error stream's text (if any) and its FIN."""
        errors = self._errors.pop(stream.headers.get("requestid", ""), None)
        stream.session.forget(stream)
        with contextlib.suppress(Exception):  # the client may have gone
            await stream.end()
            if errors is not None:
                stream.session.forget(errors)
                await errors.write(error.encode())
                await errors.end()

    async def close(self) -> None:
        """End every forwarded connection (the session is over)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _to_pod(stream: Stream, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while (chunk := await stream.read()) is not None:
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def serve_port_forward(transport: Transport, open_port: Opener) -> None:
    """Run one port-forward session until the client goes."""
    forward = PortForward(open_port)
    try:
        await Session(transport, forward.on_stream).run()
    finally:
        await forward.close()

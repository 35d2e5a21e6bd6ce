"""The server side of kubectl's port-forward: SPDY/3.1 frames carried in WebSocket binary messages.

kubectl 1.30 with `KUBECTL_PORT_FORWARD_WEBSOCKETS=true` opens a WebSocket with the subprotocol
`SPDY/3.1+portforward.k8s.io` and speaks SPDY over it as over a TCP connection (client-go's
`TunnelingConnection`: the messages are one byte stream). For each local connection it opens two streams
with the headers `streamtype` (`error`, then `data`), `port` and `requestid`; the server answers each with
a SYN_REPLY, connects the data stream to the pod's port and copies both ways (a FIN from the client is a
half-close towards the pod), then ends the data stream and the error stream (whose text, if any, is the
error kubectl shows). PINGs are echoed; SETTINGS, WINDOW_UPDATE and HEADERS are read and ignored.

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
from dataclasses import dataclass, field

from sim.k8s.errors import ApiError

log = logging.getLogger(__name__)

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_CANCEL = 5
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


@dataclass
class _Stream:
    stream_id: int
    kind: str
    request_id: str
    inbound: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class PortForwardSession:
    """One tunnelled SPDY session: `feed()` it the client's bytes; it writes frames with `send`."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], open_port: Opener) -> None:
        self._send = send
        self._open_port = open_port
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
        self._lock = asyncio.Lock()
        self._streams: dict[int, _Stream] = {}
        self._error_streams: dict[str, int] = {}
        self._writers: set[asyncio.StreamWriter] = set()
        self.gone_away = False

    async def _write(self, data: bytes) -> None:
        async with self._lock:
            await self._send(data)

    async def _reply(self, stream_id: int) -> None:
        async with self._lock:  # the compressor's state and the frames' order go together
            block = self._deflate.compress(encode_headers({})) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            await self._send(control_frame(SYN_REPLY, struct.pack(">I", stream_id) + block))

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            return decode_headers(self._inflate.decompress(block))
        except zlib.error as err:
            raise ProtocolError(f"bad compressed header block: {err}") from err

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

    async def _frame(self, raw: bytes) -> None:
        first, second, length_flags = struct.unpack_from(">HHI", raw)
        flags, payload = length_flags >> 24, raw[8:]
        if not first & 0x8000:  # a data frame
            stream_id = ((first << 16) | second) & 0x7FFFFFFF
            stream = self._streams.get(stream_id)
            if stream is not None:
                if payload:
                    stream.inbound.put_nowait(payload)
                if flags & FLAG_FIN:
                    stream.inbound.put_nowait(None)
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
            self._reset(stream_id & 0x7FFFFFFF)
        elif second == PING:
            await self._write(raw)
        elif second == GOAWAY:
            self.gone_away = True

    async def _open(self, stream_id: int, headers: dict[str, str], fin: bool) -> None:
        await self._reply(stream_id)
        kind, request_id = headers.get("streamtype", ""), headers.get("requestid", "")
        stream = _Stream(stream_id, kind, request_id)
        self._streams[stream_id] = stream
        if fin:
            stream.inbound.put_nowait(None)
        if kind == "error":
            self._error_streams[request_id] = stream_id
        elif kind == "data":
            port = headers.get("port", "")
            stream.task = asyncio.create_task(self._forward(stream, port), name=f"port-forward {port}")
        else:
            await self._write(control_frame(RST_STREAM, struct.pack(">II", stream_id, 1)))

    def _reset(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None and stream.task is not None:
            stream.inbound.put_nowait(None)
            stream.task.cancel()

    async def _forward(self, stream: _Stream, port_text: str) -> None:
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
        self._writers.add(writer)
        upstream = asyncio.create_task(self._to_pod(stream, writer))
        try:
            while chunk := await reader.read(CHUNK):
                await self._write(data_frame(stream.stream_id, chunk))
        except OSError as err:
            log.debug("port-forward %s: %s", port_text, err)
        finally:
            await self._end(stream, "")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HALF_CLOSE_SECONDS):
                    await asyncio.shield(upstream)
            upstream.cancel()
            writer.close()
            self._writers.discard(writer)
            self._streams.pop(stream.stream_id, None)

    async def _to_pod(self, stream: _Stream, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while (chunk := await stream.inbound.get()) is not None:
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

    async def _end(self, stream: _Stream, error: str) -> None:
        """FIN on the data stream, then the error stream's text (if any) and its FIN."""
        with contextlib.suppress(Exception):
            await self._write(data_frame(stream.stream_id, b"", fin=True))
            error_id = self._error_streams.pop(stream.request_id, None)
            if error_id is not None:
                if error:
                    await self._write(data_frame(error_id, error.encode()))
                await self._write(data_frame(error_id, b"", fin=True))
                self._streams.pop(error_id, None)

    async def close(self) -> None:
        """End every forwarded connection (the tunnel has gone)."""
        tasks = [s.task for s in self._streams.values() if s.task is not None]
        for stream in self._streams.values():
            stream.inbound.put_nowait(None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in list(self._writers):
            writer.close()
        self._streams.clear()


async def serve_port_forward(
    send: Callable[[bytes], Awaitable[None]],
    receive: Callable[[], Awaitable[bytes | None]],
    open_port: Opener,
) -> None:
    """Run one tunnelled session until the client closes the WebSocket (or breaks the protocol)."""
    session = PortForwardSession(send, open_port)
    try:
        while not session.gone_away and (data := await receive()) is not None:
            await session.feed(data)
    except ProtocolError as err:
        log.warning("port-forward session ended: %s", err)
    finally:
        await session.close()

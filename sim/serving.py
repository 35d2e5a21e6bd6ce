"""Serving the local cloud's ASGI components until told to stop: the one way every server of `sim` serves
(the API server, the telemetry receiver, the Grafana stand-in, the EKS binding's admin app, the ALB data
plane), on SIGTERM or SIGINT as the services do (`services.common.signals`).

hypercorn serves every app, on one port or several. An app that must take some connections whole
(`TakesConnections`: the Kubernetes API takes kubectl's SPDY upgrades, which an ASGI server cannot pass
on, since it never hands an app the raw connection after a `101 Switching Protocols`) is served behind a
front door: the public sockets are asyncio servers that read each new connection's first request head; a
connection whose head the app claims is the app's, any other is relayed byte for byte to hypercorn on a
private unix socket, so that keep-alive, chunked watch streams and WebSockets pass unchanged. Only a
connection's first request can be claimed (clients dial a fresh connection for each upgrade).

On shutdown the front door stops accepting and drops the connections that have not sent a request yet;
hypercorn finishes in-flight requests (up to the graceful timeout) and runs the app's lifespan shutdown;
the connections the app took get the same grace, then are cancelled; then nothing of it is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from services.common.signals import stop_on_signals

log = logging.getLogger(__name__)

#: Longer than the idle timeout of Go's HTTP clients (kubectl: 90 s), so that a client never reuses a
#: keep-alive connection just as the server closes it (hypercorn's default is 5 s: kubectl's retries,
#: 5 s apart, then meet a reset).
KEEP_ALIVE_SECONDS = 120.0
#: A first request head longer than this is not read by the front door: it goes to hypercorn as it came.
MAX_HEAD_BYTES = 64 * 1024
RELAY_CHUNK = 64 * 1024
BACKEND_POLL_SECONDS = 0.01


@dataclass(frozen=True)
class RequestHead:
    """The request line and headers of a connection's first request; `raw` is every byte of it."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]  # (lower-cased name, value), in order
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> RequestHead | None:
        """The head in `raw` (up to and with its blank line), or None when it is not an HTTP/1 head."""
        lines = raw.decode("latin-1").split("\r\n")
        request_line = lines[0].split(" ")
        if len(request_line) != 3 or not request_line[2].startswith("HTTP/1."):
            return None
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, colon, value = line.partition(":")
            if not colon:
                return None
            headers.append((name.strip().lower(), value.strip()))
        return cls(request_line[0], request_line[1], tuple(headers), raw)

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.target).path)

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    def values(self, name: str) -> list[str]:
        """Every value of header `name`, repeated headers and comma-separated lists alike."""
        return [v.strip() for n, value in self.headers if n == name for v in value.split(",") if v.strip()]

    @property
    def upgrade(self) -> str:
        """The protocol this request asks to switch to ("" for none), lower-cased."""
        if "upgrade" not in (v.lower() for v in self.values("connection")):
            return ""
        return ",".join(self.values("upgrade")).lower()


@runtime_checkable
class TakesConnections(Protocol):
    """An ASGI app that serves some connections itself, from their first request on."""

    def claims(self, head: RequestHead) -> bool:
        """Whether the connection whose first request is `head` is this app's to serve."""
        ...

    async def take(
        self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve a claimed connection (its head already read); the front door closes it afterwards."""
        ...


#: Hypercorn logs here (the access log is off); a server may filter what it logs as an error.
ERROR_LOG = logging.getLogger("hypercorn.error")


def hypercorn_config(graceful_timeout: float, keep_alive_seconds: float = KEEP_ALIVE_SECONDS) -> Config:
    config = Config()
    config.accesslog = None
    config.errorlog = ERROR_LOG
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = keep_alive_seconds
    return config


async def serve(
    app: Any,
    host: str,
    port: int | Sequence[int],
    graceful_timeout: float,
    shutdown_trigger: Callable[[], Awaitable[Any]],
    *,
    keep_alive_seconds: float = KEEP_ALIVE_SECONDS,
) -> None:
    """Serve `app` on `host` at `port` (or each of several) until `shutdown_trigger` returns; then finish
    in-flight requests (up to `graceful_timeout`). Idle connections are closed after `keep_alive_seconds`."""
    ports = [port] if isinstance(port, int) else list(port)
    config = hypercorn_config(graceful_timeout, keep_alive_seconds)
    if not isinstance(app, TakesConnections):
        config.bind = [f"{host}:{p}" for p in ports]
        await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)
        return
    with tempfile.TemporaryDirectory(prefix="asgi-") as private:
        await FrontDoor(app, config, Path(private) / "hypercorn.sock").serve(host, ports, shutdown_trigger)


def serve_until_signalled(
    app: Any,
    host: str,
    port: int | Sequence[int],
    graceful_timeout: float,
    *,
    keep_alive_seconds: float = KEEP_ALIVE_SECONDS,
) -> None:
    """Serve `app` as `serve` does until SIGTERM or SIGINT; then finish in-flight requests and return."""
    asyncio.run(_serve_until_signalled(app, host, port, graceful_timeout, keep_alive_seconds))


async def _serve_until_signalled(
    app: Any, host: str, port: int | Sequence[int], graceful_timeout: float, keep_alive_seconds: float
) -> None:
    stop = stop_on_signals()
    await serve(app, host, port, graceful_timeout, stop.wait, keep_alive_seconds=keep_alive_seconds)


class FrontDoor:
    """The public socket of an app that takes some connections: those it claims are its own, the rest
    are relayed to hypercorn serving the same app on the unix socket `backend`."""

    def __init__(self, app: TakesConnections, config: Config, backend: Path) -> None:
        self.app = app
        self.config = config
        self.backend = backend
        self._connections: set[asyncio.Task[Any]] = set()
        self._unread: set[asyncio.Task[Any]] = set()  # connections whose first head has not come yet
        self._taken: set[asyncio.Task[Any]] = set()

    async def serve(
        self, host: str, ports: Sequence[int], shutdown_trigger: Callable[[], Awaitable[Any]]
    ) -> None:
        self.config.bind = [f"unix:{self.backend}"]
        stop_backend = asyncio.Event()
        backend = asyncio.create_task(
            hypercorn_serve(self.app, self.config, shutdown_trigger=stop_backend.wait),  # type: ignore[arg-type]
            name="hypercorn",
        )
        servers: list[asyncio.Server] = []
        try:
            await self._backend_listening(backend)
            for port in ports:
                servers.append(await asyncio.start_server(self._connection, host, port, limit=MAX_HEAD_BYTES))
            stopping = asyncio.ensure_future(shutdown_trigger())
            await asyncio.wait({stopping, backend}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            await asyncio.gather(stopping, return_exceptions=True)
        finally:
            for server in servers:
                server.close()
            for task in self._unread:
                task.cancel()
            stop_backend.set()
            if self._taken:
                await asyncio.wait(self._taken, timeout=self.config.graceful_timeout)
            try:
                await backend
            finally:
                for task in self._connections:
                    task.cancel()
                await asyncio.gather(*self._connections, return_exceptions=True)
                for server in servers:
                    await server.wait_closed()

    async def _backend_listening(self, backend: asyncio.Task[None]) -> None:
        """Until hypercorn listens on the unix socket (it binds it once the app's startup is done)."""
        while not self.backend.exists():
            if backend.done():
                backend.result()  # raises what stopped it
                raise RuntimeError("hypercorn stopped before it listened")
            await asyncio.sleep(BACKEND_POLL_SECONDS)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)
        try:
            raw = await self._first_head(task, reader)
            if raw is None:
                return
            head = RequestHead.parse(raw) if raw else None
            if head is not None and self.app.claims(head):
                self._taken.add(task)
                task.add_done_callback(self._taken.discard)
                await self.app.take(head, reader, writer)
            else:
                await self._relay(raw, reader, writer)
        except OSError as err:
            log.debug("connection ended: %s", err)
        except Exception:  # one connection's failure is no reason to stop serving the others
            log.exception("serving a connection")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _first_head(self, task: asyncio.Task[Any], reader: asyncio.StreamReader) -> bytes | None:
        """The first request head; b"" when it is too long to read here (its bytes stay in `reader`, to
        relay); None when the client closed or stayed silent before a whole head came."""
        self._unread.add(task)
        try:
            async with asyncio.timeout(KEEP_ALIVE_SECONDS):
                return await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return b""
        except (asyncio.IncompleteReadError, TimeoutError):
            return None
        finally:
            self._unread.discard(task)

    async def _relay(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy both ways between the client and hypercorn until hypercorn closes the connection."""
        backend_reader, backend_writer = await asyncio.open_unix_connection(self.backend)
        try:
            backend_writer.write(head)
            requests = asyncio.create_task(_pump(reader, backend_writer))
            try:
                await _pump(backend_reader, writer)
            finally:
                requests.cancel()
                await asyncio.gather(requests, return_exceptions=True)
        finally:
            backend_writer.close()
            with contextlib.suppress(Exception):
                await backend_writer.wait_closed()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy `source` to `sink` until its end, then half-close `sink`."""
    try:
        while chunk := await source.read(RELAY_CHUNK):
            sink.write(chunk)
            await sink.drain()
    except OSError:
        return
    with contextlib.suppress(OSError):
        if sink.can_write_eof():
            sink.write_eof()

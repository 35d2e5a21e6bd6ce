"""The front door of an app that takes some connections whole (`sim.serving`, what serves the API server):
a connection whose first request the app claims is the app's, from its first byte on; every other is
relayed to hypercorn as it came (keep-alive, streamed bodies, half-close); shutdown waits for what is in
flight and leaves no task or connection behind. Real sockets on loopback, a small app, one event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sim.serving import RequestHead, TakesConnections, serve
from sim.supervisor.process import free_port

pytestmark = pytest.mark.timeout(60)
HOST = "127.0.0.1"
GRACE = 2.0


class EchoApp:
    """Answers each request with its method, path and body size; `/stream` streams until the client goes;
    takes `Upgrade: echo` connections and echoes their bytes."""

    def __init__(self) -> None:
        self.taken: list[RequestHead] = []
        self.lifespan: list[str] = []

    def claims(self, head: RequestHead) -> bool:
        return head.upgrade == "echo"

    async def take(
        self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.taken.append(head)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.lifespan.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        if scope["path"] == "/stream":
            while True:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.05)
        answer = f"{scope['method']} {scope['path']} {len(body)}".encode()
        await send({"type": "http.response.body", "body": answer})


@pytest.fixture
async def front_door() -> AsyncIterator[tuple[EchoApp, int, asyncio.Event, asyncio.Task[None]]]:
    app = EchoApp()
    assert isinstance(app, TakesConnections)
    port = free_port(HOST)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, HOST, port, GRACE, stop.wait))
    for _ in range(500):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            break
        assert not server.done(), server
        await asyncio.sleep(0.02)
    yield app, port, stop, server
    stop.set()
    await server


async def _response(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    """One response (content-length or chunked): its status line and body."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    status, *lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readexactly(2)
    return status, body


async def test_requests_are_relayed_on_one_keep_alive_connection(front_door: Any) -> None:
    app, port, _, _ = front_door
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await _response(reader) == ("HTTP/1.1 200 ", b"GET /a 0")
    writer.write(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert await _response(reader) == ("HTTP/1.1 200 ", b"POST /b 5")
    writer.write(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert await _response(reader) == ("HTTP/1.1 200 ", b"POST /c 3")
    writer.close()
    assert app.taken == []
    assert app.lifespan == ["lifespan.startup"]


async def test_a_claimed_connection_is_the_apps_from_its_first_byte(front_door: Any) -> None:
    app, port, _, _ = front_door
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b"POST /up?x=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly")
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    assert await reader.readexactly(5) == b"early"
    writer.write(b"later")
    assert await reader.readexactly(5) == b"later"
    writer.close()
    (head,) = app.taken
    assert (head.method, head.path, head.query) == ("POST", "/up", "x=1")


async def test_only_a_first_request_is_claimed(front_door: Any) -> None:
    app, port, _, _ = front_door
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    await _response(reader)
    writer.write(b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    assert await _response(reader) == ("HTTP/1.1 200 ", b"GET /up 0")
    writer.close()
    assert app.taken == []


async def test_a_streamed_response_flows_and_ends_with_its_client(front_door: Any) -> None:
    _, port, _, _ = front_door
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    for _ in range(3):
        assert (await reader.readuntil(b"\r\n")).strip() == b"5"
        assert await reader.readexactly(7) == b"tick\n\r\n"
    writer.close()
    await writer.wait_closed()


async def test_shutdown_waits_for_nothing_idle_and_leaves_nothing_behind(front_door: Any) -> None:
    app, port, stop, server = front_door
    idle_reader, idle_writer = await asyncio.open_connection(HOST, port)  # sent nothing yet
    stream_reader, stream_writer = await asyncio.open_connection(HOST, port)
    stream_writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    await stream_reader.readuntil(b"tick")
    taken_reader, taken_writer = await asyncio.open_connection(HOST, port)
    taken_writer.write(b"GET /up HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    await taken_reader.readuntil(b"\r\n\r\n")
    stop.set()
    await server
    assert await idle_reader.read() == b""
    while await stream_reader.read(65536):  # what was in flight, then the end
        pass
    assert await taken_reader.read() == b""
    assert app.lifespan == ["lifespan.startup", "lifespan.shutdown"]
    assert asyncio.all_tasks() == {asyncio.current_task()}
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(HOST, port)
    for writer in (idle_writer, stream_writer, taken_writer):
        writer.close()

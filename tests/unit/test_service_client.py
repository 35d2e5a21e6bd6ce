"""The services' client of their peers: an idempotent request (or a POST with an `Idempotency-Key`) that
meets a keep-alive connection the peer closed (a pod shutting down) is sent again on a new one; any other
request fails with a clear error.
A response that says `Connection: close` (a draining peer) is the last on its connection: the client
closes it and sends its next request, even a POST, on a new one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from services.common.http import ServiceClient, UpstreamUnavailable

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"n": "ok"}'
CLOSING = (
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n"
    b'{"n": "fresh"}'
)
REUSED = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"n": "reused"}'
STEP_TIMEOUT_SECONDS = 10.0


@pytest.fixture
async def closing_peer() -> AsyncIterator[str]:
    """A peer that answers the first request of each connection and drops the connection, unanswered,
    at its second: what a client meets when it reuses a connection the peer is closing."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_an_idempotent_request_on_a_connection_the_peer_closed_is_sent_again(closing_peer: str) -> None:
    async with ServiceClient("cart", closing_peer) as client:
        assert await client.get("/carts/a") == {"n": "ok"}
        assert await client.get("/carts/a") == {"n": "ok"}  # the reused connection is dropped: sent again
        assert await client.delete("/carts/a") == {"n": "ok"}


async def test_a_post_on_a_connection_the_peer_closed_is_not_sent_twice(closing_peer: str) -> None:
    async with ServiceClient("checkout", closing_peer) as client:
        assert await client.get("/healthz") == {"n": "ok"}
        with pytest.raises(UpstreamUnavailable, match="checkout unavailable: Server disconnected"):
            await client.post("/checkout", json={})


async def test_a_post_with_an_idempotency_key_on_a_connection_the_peer_closed_is_sent_again(
    closing_peer: str,
) -> None:
    async with ServiceClient("checkout", closing_peer) as client:
        assert await client.get("/healthz") == {"n": "ok"}
        answer = await client.post("/checkout", json={}, headers={"Idempotency-Key": "attempt-1"})
        assert answer == {"n": "ok"}


async def read_request(reader: asyncio.StreamReader) -> None:
    """One request, head and body (by its Content-Length); IncompleteReadError at the end of input."""
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            await reader.readexactly(int(value))


@dataclass
class DrainingPeer:
    """A peer that answers each connection's first request with `Connection: close` and then leaves the
    connection open: a request the client sent on it anyway would be answered `reused`."""

    url: str = ""
    connections: int = 0
    closed_by_client: asyncio.Queue[int] = field(default_factory=asyncio.Queue)


@pytest.fixture
async def draining_peer() -> AsyncIterator[DrainingPeer]:
    peer = DrainingPeer()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer.connections += 1
        number = peer.connections
        try:
            await read_request(reader)
            writer.write(CLOSING)
            await writer.drain()
            while True:
                await read_request(reader)
                writer.write(REUSED)
                await writer.drain()
        except asyncio.IncompleteReadError:
            await peer.closed_by_client.put(number)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    peer.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield peer
    finally:
        server.close()
        await server.wait_closed()


async def test_after_a_connection_close_response_the_next_request_goes_on_a_new_connection(
    draining_peer: DrainingPeer,
) -> None:
    async with ServiceClient("checkout", draining_peer.url) as client:
        assert await client.post("/checkout", json={"n": 1}) == {"n": "fresh"}
        async with asyncio.timeout(STEP_TIMEOUT_SECONDS):
            assert await draining_peer.closed_by_client.get() == 1  # closed right after the response
        assert await client.post("/checkout", json={"n": 2}) == {"n": "fresh"}  # a POST: never resent
        assert await client.get("/healthz") == {"n": "fresh"}
    assert draining_peer.connections == 3

"""The services' client of their peers: an idempotent request that meets a keep-alive connection the
peer closed (a pod shutting down) is sent again on a new one; any other request fails with a clear error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.common.http import ServiceClient, UpstreamUnavailable

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"n": "ok"}'


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

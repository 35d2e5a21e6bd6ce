"""The service proxy in-process with a `Store` and the endpoints controller, in front of two real TCP
echo servers on two loopback addresses: round robin, an unready endpoint skipped, new connections refused
when there is none, listeners following the Service and closed on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest

from sim.controllers.endpoints import EndpointsController
from sim.k8s.store import Store
from sim.network.proxy import ServiceProxy
from sim.supervisor.process import free_port
from tests.network.helpers import SERVICES, add_pod, add_service, set_ready

BACKENDS = {"payment-a": "127.91.1.2", "payment-b": "127.91.1.3"}
CLUSTER_IP = "127.92.1.10"
T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], within: float = 5.0) -> T:
    """`await check()` until it returns something truthy (bounded); its last value on timeout."""
    deadline = asyncio.get_running_loop().time() + within
    value = await check()
    while not value and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        value = await check()
    return value


async def echo_server(name: str, host: str, port: int) -> asyncio.Server:
    """Says its name, then echoes until the client half-closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{name}\n".encode())
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, host, port)


async def exchange(port: int, message: bytes = b"hello") -> bytes | None:
    """Connect through the proxy, send `message`, half-close and read everything; None if refused or
    reset."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(CLUSTER_IP, port), 5)
    except OSError:
        return None
    try:
        writer.write(message)
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), 5) or None
    except OSError:
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def serving(port: int) -> str | None:
    answer = await exchange(port)
    return answer.decode().split("\n")[0] if answer else None


class Network:
    def __init__(self, store: Store, port: int) -> None:
        self.store = store
        self.port = port
        self.proxy = ServiceProxy(store)
        self.controllers = [EndpointsController(store), self.proxy]


@pytest.fixture
async def network() -> AsyncIterator[Network]:
    backend_port = free_port(BACKENDS["payment-a"])
    servers = [await echo_server(name, ip, backend_port) for name, ip in BACKENDS.items()]
    store = Store()
    for name, ip in BACKENDS.items():
        add_pod(store, name, ip, ports=[{"name": "echo", "containerPort": backend_port}])
    port = free_port(CLUSTER_IP)
    add_service(store, ports=[{"name": "echo", "port": port, "targetPort": "echo"}], clusterIP=CLUSTER_IP)
    net = Network(store, port)
    for controller in net.controllers:
        controller.start()
    try:
        yield net
    finally:
        for controller in reversed(net.controllers):
            await controller.stop()
        for server in servers:
            server.close()
            await server.wait_closed()


async def test_connections_are_balanced_round_robin_and_bytes_flow_both_ways(network: Network) -> None:
    assert await eventually(lambda: serving(network.port)), "the proxy never answered"
    answers = [await exchange(network.port, f"ping {i}".encode()) for i in range(4)]
    names = [a.decode().split("\n")[0] if a else None for a in answers]
    assert sorted(names[:2]) == ["payment-a", "payment-b"]
    assert names[2:] == names[:2]
    assert answers[3] is not None
    assert answers[3].endswith(b"\nping 3")


async def test_an_unready_endpoint_gets_no_new_connections(network: Network) -> None:
    assert await eventually(lambda: serving(network.port))
    set_ready(network.store, "payment-b", False)

    async def only_a() -> bool:
        return {await serving(network.port) for _ in range(4)} == {"payment-a"}

    assert await eventually(only_a), "payment-b still receives connections after turning unready"
    set_ready(network.store, "payment-b", True)

    async def both() -> bool:
        return {await serving(network.port) for _ in range(4)} == {"payment-a", "payment-b"}

    assert await eventually(both), "payment-b did not get connections back once ready"


async def test_no_ready_endpoint_refuses_new_connections_and_lets_the_open_ones_go_on(
    network: Network,
) -> None:
    assert await eventually(lambda: serving(network.port))
    reader, writer = await asyncio.open_connection(CLUSTER_IP, network.port)
    try:
        greeting = await asyncio.wait_for(reader.readline(), 5)
        for name in BACKENDS:
            set_ready(network.store, name, False)
        # refused, as kube-proxy's REJECT rule refuses: the client learns it at connect, not later
        assert await eventually(lambda: refused_on(network.port)), "a Service with no ready endpoint listens"
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(CLUSTER_IP, network.port)
        writer.write(b"still there")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b"still there", "an open connection was cut"
    finally:
        writer.close()
    set_ready(network.store, greeting.decode().strip(), True)
    assert await eventually(lambda: serving(network.port)) == greeting.decode().strip()


async def test_listeners_follow_the_service_and_close_on_stop(network: Network) -> None:
    assert await eventually(lambda: serving(network.port))
    new_port = free_port(CLUSTER_IP)
    service = network.store.get(SERVICES, "default", "payment")
    service["spec"]["ports"][0]["port"] = new_port
    network.store.update(SERVICES, "default", "payment", service)
    assert await eventually(lambda: serving(new_port)), "no listener on the Service's new port"
    assert await eventually(lambda: refused_on(network.port)), "the old port still listens"

    network.store.delete(SERVICES, "default", "payment")
    assert await eventually(lambda: refused_on(new_port)), "the listener outlived its Service"

    add_service(
        network.store, name="again", ports=[{"port": new_port, "targetPort": 1}], clusterIP=CLUSTER_IP
    )
    assert await eventually(lambda: listening(new_port))
    await network.proxy.stop()
    assert await refused_on(new_port)
    assert not network.proxy.listeners


async def test_only_loopback_cluster_ips_are_bound(network: Network) -> None:
    add_service(network.store, name="outside", ports=[{"port": 8080}], clusterIP="10.96.0.20")
    marker_port = free_port(CLUSTER_IP)
    add_service(network.store, name="marker", ports=[{"port": marker_port}], clusterIP=CLUSTER_IP)
    # the pass that opened the later Service's listener had seen the earlier one
    assert await eventually(lambda: listening(marker_port))
    assert ("10.96.0.20", 8080) not in network.proxy.listeners
    assert {ip for ip, _ in network.proxy.listeners} == {CLUSTER_IP}


async def listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(CLUSTER_IP, port)
    except OSError:
        return False
    writer.close()
    return True


async def refused_on(port: int) -> bool:
    return not await listening(port)


async def test_a_stop_ends_the_open_connections_quietly(
    network: Network, caplog: pytest.LogCaptureFixture
) -> None:
    assert await eventually(lambda: serving(network.port))
    reader, writer = await asyncio.open_connection(CLUSTER_IP, network.port)
    try:
        assert await asyncio.wait_for(reader.readline(), 5)
        with caplog.at_level(logging.ERROR):
            await network.proxy.stop()
            ended = await asyncio.wait_for(reader.read(), 5)
            await asyncio.sleep(0.1)  # the stream server's done-callbacks have run
    finally:
        writer.close()
    assert ended == b"", "the connection outlived the proxy"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

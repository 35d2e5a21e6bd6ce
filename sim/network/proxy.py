"""The service proxy (kube-proxy's job, in user space): a TCP listener on each Service port's
`clusterIP:port` that forwards every new connection to one ready endpoint, round robin.

Endpoints come from the Service's EndpointSlices: only `conditions.ready` endpoints take new
connections, so a pod that turns unready (or starts terminating) gets none, while connections it already
has go on. A Service port with no ready endpoint refuses new connections, as kube-proxy's REJECT rule for
it does: its listener stops listening until an endpoint is ready again. An endpoint that refuses is skipped
for the next ready one; with none left the client's connection is reset at once (it never hangs). Bytes
are copied both ways, a half-close is passed on, and both sides are closed when either is done. Listeners
follow Service changes and close, with their connections, when the Service goes or the proxy stops.

Only 127.0.0.0/8 addresses are ever bound. `NodePort` and `LoadBalancer` Services are served on their
ClusterIP only (no node port, no external address); headless and ExternalName Services get no listener;
only TCP ports are proxied. A Service port below 1024 needs the privilege to bind it (root here).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.controllers.base import Controller
from sim.controllers.endpoints import SERVICE_NAME_LABEL
from sim.k8s import resources
from sim.k8s.store import Obj, Store

log = logging.getLogger(__name__)

SERVICES = resources.by_key("services")
SLICES = resources.by_key("endpointslices.discovery.k8s.io")
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
CONNECT_TIMEOUT = 5.0
CHUNK = 64 * 1024

Address = tuple[str, int]


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in LOOPBACK
    except ValueError:
        return False


def proxied_ports(service: Mapping[str, Any]) -> dict[Address, str]:
    """The listeners a Service wants: (clusterIP, port) -> the Service port's name."""
    spec = service.get("spec") or {}
    ip = spec.get("clusterIP")
    if not ip or ip == "None" or spec.get("type") == "ExternalName":
        return {}
    return {
        (ip, int(port["port"])): str(port.get("name") or "")
        for port in spec.get("ports") or []
        if port.get("protocol", "TCP") == "TCP"
    }


def ready_backends(slices: list[Obj], port_name: str) -> list[Address]:
    """The ready endpoints of a Service port, in a stable order."""
    backends: set[Address] = set()
    for slice_obj in slices:
        numbers = [p["port"] for p in slice_obj.get("ports") or [] if str(p.get("name") or "") == port_name]
        if not numbers:
            continue
        for endpoint in slice_obj.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            backends.update((ip, int(numbers[0])) for ip in endpoint.get("addresses") or [])
    return sorted(backends)


@dataclass
class Listener:
    """One `clusterIP:port`, its current ready backends and the connections it carries."""

    address: Address
    service: str  # ns/name, for logs
    backends: list[Address] = field(default_factory=list)
    server: asyncio.Server | None = None
    connections: set[asyncio.Task[None]] = field(default_factory=set)
    closed: bool = False
    _next: int = 0
    _changing: asyncio.Lock = field(default_factory=asyncio.Lock)

    def pick(self) -> list[Address]:
        """The backends in the order to try them, starting with the next in round robin."""
        if not self.backends:
            return []
        start = self._next % len(self.backends)
        self._next = start + 1
        return self.backends[start:] + self.backends[:start]

    async def follow(self) -> None:
        """Listen while there is a ready backend, and not while there is none (new connections are then
        refused); the connections carried go on either way."""
        async with self._changing:
            if self.backends and self.server is None and not self.closed:
                try:
                    self.server = await asyncio.start_server(self._accept, *self.address, reuse_address=True)
                except OSError as err:
                    log.warning("service %s: cannot listen on %s:%d: %s", self.service, *self.address, err)
            elif not self.backends and self.server is not None:
                self.server.close()
                self.server = None

    async def close(self) -> None:
        """Stop listening and end every connection carried."""
        async with self._changing:
            self.closed = True
            if self.server is not None:
                self.server.close()
                self.server = None
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            await self._forward(reader, writer)
        except asyncio.CancelledError:
            # `close` ended the connection: end the task quietly (Python 3.11's stream server logs the
            # CancelledError of a cancelled connection task as an error)
            if not self.closed:
                raise
        finally:
            self.connections.discard(task)

    async def _forward(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for backend in self.pick():
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    upstream = await asyncio.open_connection(*backend)
                break
            except (OSError, TimeoutError) as err:
                log.info("%s: endpoint %s:%d unreachable: %s", self.service, *backend, err)
        if upstream is None:
            _reset(client_writer)
            return
        backend_reader, backend_writer = upstream
        try:
            await asyncio.gather(_copy(client_reader, backend_writer), _copy(backend_reader, client_writer))
        finally:
            for writer in (client_writer, backend_writer):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a refused connection looks to the client."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then pass the half-close on; a reset ends the other side too."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.transport.abort()


class ServiceProxy(Controller):
    """Listeners for every ClusterIP Service port, balancing over the Service's ready endpoints."""

    name = "service-proxy"
    watches = frozenset({SERVICES.key, SLICES.key})

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.listeners: dict[Address, Listener] = {}
        self._changes: set[asyncio.Task[None]] = set()

    def reconcile(self) -> None:
        slices: dict[tuple[str, str], list[Obj]] = {}
        for slice_obj in self.store.iter_objects(SLICES):
            meta = slice_obj["metadata"]
            owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
            if owner:
                slices.setdefault((meta["namespace"], owner), []).append(slice_obj)
        wanted: dict[Address, tuple[str, list[Address]]] = {}
        for service in self.store.iter_objects(SERVICES):
            meta = service["metadata"]
            key = (meta["namespace"], meta["name"])
            for address, port_name in proxied_ports(service).items():
                if not is_loopback(address[0]):
                    log.warning("service %s/%s: not proxying %s, outside 127.0.0.0/8", *key, address[0])
                    continue
                wanted[address] = (f"{key[0]}/{key[1]}", ready_backends(slices.get(key, []), port_name))
        for address in set(self.listeners) - set(wanted):
            self._later(self.listeners.pop(address).close())
        for address, (service_name, backends) in wanted.items():
            listener = self.listeners.get(address)
            if listener is None or listener.service != service_name:
                if listener is not None:
                    self._later(listener.close())
                listener = self.listeners[address] = Listener(address, service_name)
            listener.backends = backends
            self._later(listener.follow())

    def _later(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._changes.add(task)
        task.add_done_callback(self._changes.discard)

    async def stop(self) -> None:
        await super().stop()
        await asyncio.gather(*self._changes, return_exceptions=True)
        listeners, self.listeners = list(self.listeners.values()), {}
        await asyncio.gather(*(listener.close() for listener in listeners), return_exceptions=True)

"""Cluster names inside a pod: `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local` resolve to the
Service's address, as a pod's resolv.conf (`search <ns>.svc.cluster.local svc.cluster.local
cluster.local`, `ndots:5`) and the cluster DNS would make them; every other name goes to the normal
resolver unchanged.

The records are a hosts-style file (`ADDRESS NAME...`, fully qualified names) that the cluster keeps up
to date and replaces atomically; it is re-read when it changes. `install()` wraps `socket.getaddrinfo`,
`gethostbyname` and `gethostbyname_ex`, which asyncio's `loop.getaddrinfo` (and so httpx, aiohttp's
default threaded resolver, aiobotocore and aiokafka) and `socket.create_connection` all call. Standard
library only: it runs inside the pod's Python before anything else is imported.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

HOSTS_VARIABLE = "SHOPSTACK_CLUSTER_HOSTS"
SEARCH_VARIABLE = "SHOPSTACK_DNS_SEARCH"
NDOTS = 5


def read_hosts(text: str) -> dict[str, list[str]]:
    """A hosts file's records: lower-cased name -> addresses, in file order."""
    records: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        for name in fields[1:]:
            records.setdefault(name.lower().rstrip("."), []).append(fields[0])
    return records


def candidates(name: str, search: Sequence[str], ndots: int = NDOTS) -> list[str]:
    """The names resolv.conf would try for `name`, in order."""
    if name.endswith("."):
        return [name[:-1]]
    expanded = [f"{name}.{domain}" for domain in search]
    return [name, *expanded] if name.count(".") >= ndots else [*expanded, name]


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


class ClusterResolver:
    """Looks names up in the hosts file at `hosts_path` with the pod's `search` domains."""

    def __init__(self, hosts_path: str, search: Sequence[str]) -> None:
        self.hosts_path = hosts_path
        self.search = [d.strip(".").lower() for d in search if d.strip(".")]
        self._seen: tuple[int, int, int] | None = None
        self._records: dict[str, list[str]] = {}

    def records(self) -> dict[str, list[str]]:
        try:
            stat = os.stat(self.hosts_path)
        except OSError:
            return {}
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            try:
                with open(self.hosts_path, encoding="utf-8") as file:
                    self._records = read_hosts(file.read())
            except OSError:
                return self._records
            self._seen = seen
        return self._records

    def lookup(self, host: str) -> tuple[str, list[str]] | None:
        """The fully qualified name `host` resolves to and its addresses, or None (not a cluster name)."""
        if not host or _is_address(host):
            return None
        records = self.records()
        for name in candidates(host.lower(), self.search):
            if name in records:
                return name, records[name]
        return None


def install(resolver: ClusterResolver) -> None:
    """Route the socket module's name lookups through `resolver` first."""
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname
    real_gethostbyname_ex = socket.gethostbyname_ex

    def text(host: Any) -> str | None:
        if isinstance(host, bytes):  # already IDNA-encoded: ASCII, or not a name of ours
            try:
                return host.decode("ascii")
            except UnicodeDecodeError:
                return None
        return host if isinstance(host, str) else None

    def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        name = text(host)
        found = resolver.lookup(name) if name is not None and family != socket.AF_INET6 else None
        if found is None:
            return real_getaddrinfo(host, port, family, type, proto, flags)
        results: list[Any] = []
        for address in found[1]:
            results += real_getaddrinfo(address, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        return results

    def gethostbyname(host: str) -> str:
        found = resolver.lookup(host)
        return found[1][0] if found else real_gethostbyname(host)

    def gethostbyname_ex(host: str) -> tuple[str, list[str], list[str]]:
        found = resolver.lookup(host)
        if found is None:
            return real_gethostbyname_ex(host)
        aliases = [host] if host.lower().rstrip(".") != found[0] else []
        return found[0], aliases, list(found[1])

    patches: dict[str, Callable[..., Any]] = {
        "getaddrinfo": getaddrinfo,
        "gethostbyname": gethostbyname,
        "gethostbyname_ex": gethostbyname_ex,
    }
    for attribute, function in patches.items():
        setattr(socket, attribute, function)


def install_from_environment() -> ClusterResolver | None:
    """Install the resolver the pod's environment describes; nothing when it describes none."""
    hosts_path = os.environ.get(HOSTS_VARIABLE)
    if not hosts_path:
        return None
    resolver = ClusterResolver(hosts_path, os.environ.get(SEARCH_VARIABLE, "").split())
    install(resolver)
    return resolver

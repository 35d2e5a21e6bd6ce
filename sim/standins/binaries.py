"""What the stand-ins that run a Debian binary in place of an image share: the pod's listen address and
cluster names.

A Go binary on this machine resolves names with the host's resolver, which knows nothing of the cluster's
Services (only Python processes resolve them, through the resolver shim on their `PYTHONPATH`); and it must
listen on its pod's own loopback address, not on all of them. So a wrapper in Python resolves the cluster
names the binary's configuration names (`resolve_url`) and sets its listen address (`with_listen`), then
becomes the binary.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

RESOLVE_SECONDS = 60.0


class StandInError(Exception):
    """Configuration the stand-in cannot run; the message is one line saying why."""


def is_cluster_name(host: str) -> bool:
    """Whether `host` is a name only the cluster's DNS knows: a bare Service name, or one under `.svc`."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        name = host.lower().rstrip(".")
        return "." not in name or name.endswith((".svc", ".svc.cluster.local")) or ".svc." in name
    return False


def resolve_host(host: str, timeout: float = RESOLVE_SECONDS) -> str:
    """The address of a cluster name, waiting up to `timeout` for its Service to be known."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
            return str(infos[0][4][0])
        except OSError as err:
            if time.monotonic() >= deadline:
                raise StandInError(f"cannot resolve {host} in the cluster: {err}") from None
            time.sleep(1)


def resolve_url(url: str, timeout: float = RESOLVE_SECONDS) -> str:
    """`url` with a cluster name as its host replaced by its address (any other URL unchanged)."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host or not is_cluster_name(host):
        return url
    address = resolve_host(host, timeout)
    netloc = address if parts.port is None else f"{address}:{parts.port}"
    if parts.username:
        credentials = parts.username + (f":{parts.password}" if parts.password else "")
        netloc = f"{credentials}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def flag_value(args: Sequence[str], flag: str) -> str | None:
    """The last value of `--flag=value` (or `--flag value`) in `args`, or None."""
    found = None
    for i, arg in enumerate(args):
        if arg.startswith(f"{flag}="):
            found = arg.split("=", 1)[1]
        elif arg == flag and i + 1 < len(args):
            found = args[i + 1]
    return found


def without_flag(args: Sequence[str], flag: str) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == flag:
            skip = True
            continue
        if not arg.startswith(f"{flag}="):
            kept.append(arg)
    return kept


def with_listen(args: Sequence[str], listen: str, flag: str = "--web.listen-address") -> list[str]:
    """`args` listening on `listen` (the pod's address and the image's port). A listen address the pod
    gives must be on that port (its host is the pod's anyway)."""
    given = flag_value(args, flag)
    if given is not None:
        wanted = listen.rpartition(":")[2]
        if given.rpartition(":")[2] != wanted:
            raise StandInError(f"{flag}={given}: the stand-in serves the image's port {wanted} only")
    return [*without_flag(args, flag), f"{flag}={listen}"]

"""Which headers cross the proxy: hop-by-hop headers stop here, the request id and the X-Forwarded-*
headers are set, everything else passes unchanged in both directions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

REQUEST_ID = "X-Request-Id"

# RFC 9110 7.6.1, plus the de-facto Proxy-Connection and Keep-Alive.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by the proxy itself on the way up.
REPLACED_UPSTREAM = frozenset(
    {"host", "x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
)
# Set by this process's server (hypercorn) on the way down: an upstream's copy would be a duplicate.
REPLACED_DOWNSTREAM = frozenset({"date", "server", "x-request-id"})

_USABLE_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,200}")

Headers = list[tuple[str, str]]


def request_id(incoming: str | None) -> str:
    """The caller's request id when it is a usable token (printable ASCII, at most 200), else a new one."""
    if incoming is not None and _USABLE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return str(uuid.uuid4())


def end_to_end(headers: Iterable[tuple[str, str]]) -> Headers:
    """`headers` without the hop-by-hop ones, including any that `Connection` names."""
    items = list(headers)
    named = {
        token.strip().lower()
        for name, value in items
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [(name, value) for name, value in items if name.lower() not in HOP_BY_HOP | named]


def upstream_headers(
    headers: Iterable[tuple[str, str]], *, client: str | None, scheme: str, host: str, request_id: str
) -> Headers:
    """The headers to send upstream.

    X-Forwarded-For gains the client's address; X-Forwarded-Proto and -Host keep what an edge in front
    (the load balancer) set, or say what this proxy saw.
    """
    items = end_to_end(headers)
    incoming = {name.lower(): value for name, value in items}
    earlier = [value for name, value in items if name.lower() == "x-forwarded-for"]
    forwarded_for = ", ".join(part for part in (*earlier, client) if part)
    kept = [(name, value) for name, value in items if name.lower() not in REPLACED_UPSTREAM]
    added = [
        (REQUEST_ID, request_id),
        ("X-Forwarded-Proto", incoming.get("x-forwarded-proto", scheme)),
        ("X-Forwarded-Host", incoming.get("x-forwarded-host", host)),
    ]
    if forwarded_for:
        added.append(("X-Forwarded-For", forwarded_for))
    return kept + added


def downstream_headers(headers: Iterable[tuple[str, str]], *, request_id: str) -> Headers:
    """The upstream's response headers to return, with the request id."""
    kept = [(name, value) for name, value in end_to_end(headers) if name.lower() not in REPLACED_DOWNSTREAM]
    return [*kept, (REQUEST_ID, request_id)]

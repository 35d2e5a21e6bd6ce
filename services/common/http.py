"""Calls to peer services: one pooled, traced httpx client per peer, with timeouts and clear errors."""

from __future__ import annotations

from typing import Any

import httpx

from services.common.idempotency import IDEMPOTENCY_HEADER

DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)
CONNECT_RETRIES = 2
#: methods a request of which may be sent twice with the effect of once
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: the connection closed or was reset under a request that went out on it
CONNECTION_LOST = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
#: attempts at an idempotent request whose connection is lost under it
LOST_CONNECTION_ATTEMPTS = 3


class UpstreamUnavailable(Exception):
    """A peer could not be reached, timed out or failed (5xx)."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} unavailable: {reason}")
        self.service = service


class UpstreamRejected(Exception):
    """A peer answered with a 4xx; `status` and `body` say why."""

    def __init__(self, service: str, status: int, body: Any) -> None:
        super().__init__(f"{service} answered {status}: {_message(body)}")
        self.service = service
        self.status = status
        self.body = body


class ServiceClient:
    """JSON calls to one peer service, addressed by its base URL (e.g. `PRODUCT_CATALOG_URL`)."""

    def __init__(self, service: str, base_url: str, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self.service = service
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=httpx.AsyncHTTPTransport(retries=CONNECT_RETRIES),
        )

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return the decoded JSON body (None for an empty one).

        A peer pod that is shutting down closes its idle keep-alive connections, and one may close just
        as a request goes out on it; an idempotent request that met such a close (or a reset) is sent
        again (`_send`), on a new connection (which the Service no longer routes to that pod). A POST that
        carries an `Idempotency-Key` header counts as idempotent: the peer takes it once."""
        try:
            response = await self._send(method, path, **kwargs)
        except httpx.TimeoutException as err:
            raise UpstreamUnavailable(self.service, f"timed out ({type(err).__name__})") from err
        except httpx.TransportError as err:
            raise UpstreamUnavailable(self.service, str(err) or type(err).__name__) from err
        body = _decode(response)
        if response.status_code >= 500:
            raise UpstreamUnavailable(self.service, f"answered {response.status_code}: {_message(body)}")
        if response.status_code >= 400:
            raise UpstreamRejected(self.service, response.status_code, body)
        return body

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response; an idempotent request that met a lost connection goes again (the pool may hold
        more than one connection to a pod that is going, each failing once before it is dropped)."""
        for _ in range(LOST_CONNECTION_ATTEMPTS - 1):
            try:
                return await self.http.request(method, path, **kwargs)
            except CONNECTION_LOST:
                if not idempotent(method, kwargs.get("headers")):
                    raise
        return await self.http.request(method, path, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.request("POST", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Any:
        return await self.request("DELETE", path, **kwargs)


def idempotent(method: str, headers: Any = None) -> bool:
    """Whether a request may be sent twice with the effect of once."""
    if method.upper() in IDEMPOTENT:
        return True
    return method.upper() == "POST" and IDEMPOTENCY_HEADER in httpx.Headers(headers)


def _message(body: Any) -> str:
    """The `error` of a peer's JSON error body, or the body as text."""
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return str(body)


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text

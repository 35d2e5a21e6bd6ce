"""moto's server parts, made cheap per request: the emulator serves every AWS call of the deploy, the
local ALB, the services' DynamoDB and the Kafka stand-in's storage (each produce and fetch of Tansu is a
few S3 requests), so the per-request overhead of moto's dispatch decides how the whole local cloud copes
under load.

moto's dispatcher resolves the host of every request to its backend by listing moto's package directory
(some 200 `isdir` calls) under a lock that every request takes; with two consumers polling a topic and a
few producers, that lock held the emulator at a full core and a produce waited over a second. Here the
resolution is made once per host. And werkzeug logs every request line; only server errors are logged.
"""

from __future__ import annotations

from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler

#: the hosts whose backend is remembered: enough for every service and region the local cloud uses, and a
#: bound against clients that make up hosts
MOST_REMEMBERED_HOSTS = 1024


class Dispatcher(DomainDispatcherApplication):  # type: ignore[misc]
    """moto's dispatcher, resolving each host to its backend once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host in self._backends:
            return self._backends[host]
        backend = super().get_backend_for_host(host)
        if len(self._backends) < MOST_REMEMBERED_HOSTS:
            self._backends[host] = backend
        return backend


class RequestHandler(MotoRequestHandler):  # type: ignore[misc]
    """moto's request handler, logging only the requests that the server failed (5xx)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if str(code).startswith("5"):
            super().log_request(code, size)

"""Name resolution for Locust's gevent: in gevent's thread pool, through the `socket` module's own
functions as they were before gevent patched them.

gevent's resolvers call `_socket` directly, which skips a resolver installed on `socket` (the local
cloud's pods resolve Service names with one); this one honours it, and is gevent's default (threaded,
blocking calls) everywhere else. `python -m services.load_generator` selects it (`GEVENT_RESOLVER`).
"""

from __future__ import annotations

from typing import Any

from gevent import monkey
from gevent.resolver.thread import Resolver as ThreadResolver


def _original(name: str) -> Any:
    return monkey.get_original("socket", name)


class Resolver(ThreadResolver):  # type: ignore[misc]
    def gethostbyname(self, *args: Any) -> Any:
        return self.pool.apply(_original("gethostbyname"), args)

    def gethostbyname_ex(self, *args: Any) -> Any:
        return self.pool.apply(_original("gethostbyname_ex"), args)

    def getaddrinfo(self, *args: Any, **kwargs: Any) -> Any:
        return self.pool.apply(_original("getaddrinfo"), args, kwargs)

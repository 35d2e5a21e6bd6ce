"""The route table: path prefixes to upstream base URLs, matched longest prefix first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    """Requests under `prefix` go to `upstream`; with `strip_prefix` the prefix is cut from the path."""

    prefix: str
    upstream: str
    strip_prefix: bool = False

    def target(self, raw_path: str) -> str:
        """The upstream URL (without query) for a request path that starts with the prefix."""
        path = "/" + raw_path[len(self.prefix) :].lstrip("/") if self.strip_prefix else raw_path
        return self.upstream.rstrip("/") + path


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=lambda route: len(route.prefix), reverse=True)

    def match(self, raw_path: str) -> Route | None:
        return next((route for route in self.routes if raw_path.startswith(route.prefix)), None)


def shop_routes(frontend_url: str, collector_url: str) -> RouteTable:
    """The shop's edge: telemetry from browsers to the collector, everything else to the frontend."""
    return RouteTable(
        [
            Route("/otlp-http/", collector_url, strip_prefix=True),
            Route("/api/", frontend_url),
            Route("/", frontend_url),
        ]
    )

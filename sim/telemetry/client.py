"""`TelemetryQuery`: the tests' client for the receiver's query API, returning the store's records.

Telemetry reaches the receiver asynchronously (batch span and log processors, periodic metric readers),
so the `wait_for_*` methods poll until what is asked for has arrived, for at most `timeout` seconds,
and then raise `TelemetryTimeout` saying what was there instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sized
from types import TracebackType
from typing import Any, TypedDict, TypeVar, Unpack

import httpx

from sim.telemetry import views
from sim.telemetry.store import Edge, LogRecord, Metric, SignalStats, Span

T = TypeVar("T")

DEFAULT_WAIT_SECONDS = 15.0
POLL_INTERVAL_SECONDS = 0.1


class SpanFilters(TypedDict, total=False):
    """The span filters the API takes; `attributes` match by equality (`"200"` matches 200)."""

    service: str
    name: str
    trace_id: str
    kind: str
    attributes: Mapping[str, Any]
    limit: int


class TelemetryQueryError(RuntimeError):
    """The receiver refused a query; the message is its error."""


class TelemetryTimeout(TimeoutError):
    """What a `wait_for_*` call waited for did not arrive in time."""


class TelemetryQuery:
    """Queries one receiver at `url` (its base URL, the one services export to)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TelemetryQuery:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def trace(self, trace_id: str) -> list[Span]:
        """The spans of one trace by start time; empty when the receiver has none of it."""
        response = self._http.get(f"/api/traces/{trace_id}")
        if response.status_code == httpx.codes.NOT_FOUND:
            return []
        return [views.span_from_json(s) for s in self._json(response)["spans"]]

    def spans(self, **filters: Unpack[SpanFilters]) -> list[Span]:
        """Spans matching every filter given (the newest `limit`, default 1000), oldest first."""
        params: dict[str, Any] = {k: v for k, v in filters.items() if k != "attributes"}
        for key, value in (filters.get("attributes") or {}).items():
            params[f"attr.{key}"] = _as_parameter(value)
        response = self._http.get("/api/spans", params=params)
        return [views.span_from_json(s) for s in self._json(response)["spans"]]

    def services(self) -> list[str]:
        names: list[str] = self._json(self._http.get("/api/services"))["services"]
        return names

    def service_graph(self) -> list[Edge]:
        return [views.edge_from_json(e) for e in self._json(self._http.get("/api/service-graph"))["edges"]]

    def metrics(self, service: str | None = None, name: str | None = None) -> list[Metric]:
        """Metrics with the latest data point of each attribute set."""
        params = {k: v for k, v in (("service", service), ("name", name)) if v is not None}
        response = self._http.get("/api/metrics", params=params)
        return [views.metric_from_json(m) for m in self._json(response)["metrics"]]

    def logs(
        self, service: str | None = None, trace_id: str | None = None, limit: int | None = None
    ) -> list[LogRecord]:
        params = {k: v for k, v in (("service", service), ("trace_id", trace_id), ("limit", limit)) if v}
        response = self._http.get("/api/logs", params=params)
        return [views.log_from_json(r) for r in self._json(response)["logs"]]

    def stats(self) -> dict[str, SignalStats]:
        """Per signal (spans, metric_points, logs): stored, received, evicted, rejected and the cap."""
        document = self._json(self._http.get("/api/stats"))
        return {k: views.stats_from_json(v) for k, v in document.items() if isinstance(v, dict)}

    def clear(self) -> None:
        """Forget everything the receiver holds, for every test that shares it."""
        self._json(self._http.delete("/api/data"))

    def wait_for_spans(
        self,
        predicate: Callable[[Span], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = DEFAULT_WAIT_SECONDS,
        **filters: Unpack[SpanFilters],
    ) -> list[Span]:
        """At least `count` spans matching `filters` and `predicate`, once they have arrived."""

        def fetch() -> list[Span]:
            return [s for s in self.spans(**filters) if predicate is None or predicate(s)]

        return poll(fetch, lambda spans: len(spans) >= count, timeout, f"{count} span(s) matching {filters}")

    def wait_for_trace(
        self, trace_id: str, services: Collection[str] = (), *, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> list[Span]:
        """The trace's spans once it has spans from every one of `services` (or any span if none given)."""
        wanted = set(services)

        def complete(spans: list[Span]) -> bool:
            return bool(spans) and wanted <= {s.service for s in spans}

        return poll(
            lambda: self.trace(trace_id),
            complete,
            timeout,
            f"trace {trace_id} with spans from {sorted(wanted) or 'any service'}",
            lambda spans: f"spans from {sorted({s.service for s in spans})}",
        )

    def wait_for_metric(
        self,
        service: str,
        name: str,
        predicate: Callable[[Metric], bool] | None = None,
        *,
        timeout: float = DEFAULT_WAIT_SECONDS,
    ) -> Metric:
        """The metric `name` of `service` once it has arrived (and `predicate` holds for it)."""

        def done(metrics: list[Metric]) -> bool:
            return bool(metrics) and (predicate is None or predicate(metrics[0]))

        return poll(lambda: self.metrics(service, name), done, timeout, f"metric {name} of {service}")[0]

    def wait_for_logs(
        self,
        predicate: Callable[[LogRecord], bool] | None = None,
        *,
        service: str | None = None,
        trace_id: str | None = None,
        count: int = 1,
        timeout: float = DEFAULT_WAIT_SECONDS,
    ) -> list[LogRecord]:
        """At least `count` log records of `service` and/or `trace_id` matching `predicate`."""

        def fetch() -> list[LogRecord]:
            return [r for r in self.logs(service, trace_id) if predicate is None or predicate(r)]

        wanted = f"{count} log record(s) of service={service} trace_id={trace_id}"
        return poll(fetch, lambda records: len(records) >= count, timeout, wanted)

    def _json(self, response: httpx.Response) -> Any:
        if response.is_error:
            try:
                message = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise TelemetryQueryError(f"{response.request.method} {response.request.url}: {message}")
        return response.json() if response.content else None


def poll(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    timeout: float,
    wanted: str,
    describe: Callable[[T], str] | None = None,
    *,
    error: type[Exception] = TelemetryTimeout,
    interval: float = POLL_INTERVAL_SECONDS,
) -> T:
    """Call `fetch` every `interval` seconds until `done` holds for its result; `error` naming what was
    `wanted` once `timeout` seconds have passed (also the Jaeger query client's wait)."""
    deadline = time.monotonic() + timeout
    while True:
        found = fetch()
        if done(found):
            return found
        if time.monotonic() >= deadline:
            seen = (
                describe(found) if describe else f"{len(found) if isinstance(found, Sized) else found} found"
            )
            raise error(f"no {wanted} after {timeout:g}s; {seen}")
        time.sleep(interval)


def _as_parameter(value: Any) -> str:
    """An attribute value as the API's query string compares it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

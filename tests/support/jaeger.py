"""`JaegerQuery`: the tests' client of Jaeger's query API (`/api/...` on 16686), at every stage the same.

Spans come back as Jaeger writes them and are read back into OpenTelemetry's terms (`Span`): the process
is the span's resource (`service.name` included), `span.kind` its kind (`SERVER`...), `otel.status_code`
and `otel.status_description` its status, the `CHILD_OF` reference its parent, `FOLLOWS_FROM` its links,
each log an event (its `event` field the name), `otel.scope.name` its scope; the remaining tags are its
attributes, typed as Jaeger types them. The service graph is Jaeger's dependencies.

Telemetry reaches Jaeger asynchronously (the services' batch exporters, the collector's batch and queue),
so the `wait_for_*` methods poll until what is asked for has arrived, for at most `timeout` seconds,
then raise `JaegerTimeout` saying what was there instead.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import httpx

from sim.telemetry.client import poll

T = TypeVar("T")

DEFAULT_WAIT_SECONDS = 15.0
POLL_INTERVAL_SECONDS = 0.25
#: the tags Jaeger's translation adds to a span's attributes (read back into its kind, status, scope)
TRANSLATION_TAGS = frozenset(
    {
        "span.kind",
        "otel.status_code",
        "otel.status_description",
        "otel.scope.name",
        "otel.scope.version",
        "w3c.tracestate",
    }
)


class JaegerQueryError(RuntimeError):
    """Jaeger refused a query; the message is its error."""


class JaegerTimeout(TimeoutError):
    """What a `wait_for_*` call waited for did not arrive in time."""


@dataclass(frozen=True)
class SpanStatus:
    code: str = "UNSET"  # UNSET, OK or ERROR
    message: str = ""


@dataclass(frozen=True)
class SpanEvent:
    name: str
    time_unix_nano: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SpanLink:
    trace_id: str
    span_id: str


@dataclass(frozen=True)
class Span:
    """One span as Jaeger stored it; ids are lowercase hex (trace ids 32 digits)."""

    trace_id: str
    span_id: str
    name: str
    service: str
    kind: str = "UNSPECIFIED"  # INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER
    parent_span_id: str | None = None
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    status: SpanStatus = SpanStatus()
    events: tuple[SpanEvent, ...] = ()
    links: tuple[SpanLink, ...] = ()
    scope: str = ""
    #: the process's tags and its service name: the resource of the pod that made the span
    resource: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Dependency:
    parent: str
    child: str
    call_count: int


def _trace_id(text: str) -> str:
    return text.lower().rjust(32, "0")


def _value(tag: Mapping[str, Any]) -> Any:
    kind, value = tag.get("type", "string"), tag.get("value")
    if kind == "int64" and isinstance(value, str):
        return int(value)
    if kind == "binary" and isinstance(value, str):
        return base64.b64decode(value)
    return value


def _tags(tags: list[Mapping[str, Any]] | None) -> dict[str, Any]:
    return {tag["key"]: _value(tag) for tag in tags or []}


def span_from_jaeger(document: Mapping[str, Any], processes: Mapping[str, Any]) -> Span:
    """One span of a trace in Jaeger's JSON, with the trace's processes."""
    process = processes.get(document.get("processID", ""), {}) or document.get("process") or {}
    tags = _tags(document.get("tags"))
    code = str(tags.get("otel.status_code", "UNSET")).upper()
    attributes = {k: v for k, v in tags.items() if k not in TRANSLATION_TAGS}
    if code == "ERROR" and attributes.get("error") is True:
        del attributes["error"]
    parent = next((r for r in document.get("references") or [] if r.get("refType") == "CHILD_OF"), None)
    links = tuple(
        SpanLink(_trace_id(r["traceID"]), r["spanID"])
        for r in document.get("references") or []
        if r.get("refType") == "FOLLOWS_FROM"
    )
    events = []
    for log in document.get("logs") or []:
        fields = _tags(log.get("fields"))
        name = str(fields.pop("event", ""))
        events.append(SpanEvent(name, int(log.get("timestamp", 0)) * 1000, fields))
    start = int(document.get("startTime", 0)) * 1000
    kind = str(tags.get("span.kind", "unspecified")).upper()
    return Span(
        trace_id=_trace_id(document["traceID"]),
        span_id=document["spanID"],
        name=document.get("operationName", ""),
        service=process.get("serviceName", ""),
        kind=kind,
        parent_span_id=parent["spanID"] if parent else None,
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(document.get("duration", 0)) * 1000,
        attributes=attributes,
        status=SpanStatus(code, str(tags.get("otel.status_description", ""))),
        events=tuple(events),
        links=links,
        scope=str(tags.get("otel.scope.name", "")),
        resource={**_tags(process.get("tags")), "service.name": process.get("serviceName", "")},
    )


def spans_of(trace: Mapping[str, Any]) -> list[Span]:
    processes = trace.get("processes") or {}
    spans = [span_from_jaeger(s, processes) for s in trace.get("spans") or []]
    return sorted(spans, key=lambda s: s.start_time_unix_nano)


class JaegerQuery:
    """Queries Jaeger's API at `url` (its query port's base URL)."""

    def __init__(self, url: str, *, timeout: float = 20.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JaegerQuery:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _data(self, path: str, params: Mapping[str, Any] | None = None, *, missing_ok: bool = False) -> Any:
        response = self._http.get(path, params=params)
        if missing_ok and response.status_code == httpx.codes.NOT_FOUND:
            return None
        if response.is_error:
            try:
                message = "; ".join(e["msg"] for e in json.loads(response.text)["errors"])
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise JaegerQueryError(f"GET {response.request.url} ({response.status_code}): {message}")
        return response.json()["data"]

    def services(self) -> list[str]:
        return list(self._data("/api/services") or [])

    def operations(self, service: str) -> list[str]:
        return sorted(self._data(f"/api/services/{service}/operations") or [])

    def trace(self, trace_id: str) -> list[Span]:
        """The spans of one trace by start time; empty when Jaeger has none of it."""
        data = self._data(f"/api/traces/{trace_id}", missing_ok=True)
        return spans_of(data[0]) if data else []

    def find_traces(
        self,
        service: str,
        *,
        operation: str | None = None,
        tags: Mapping[str, Any] | None = None,
        lookback: float = 3600.0,
        limit: int = 20,
    ) -> list[list[Span]]:
        """The most recent traces with a span of `service` (named `operation`, with every tag) that
        began in the last `lookback` seconds."""
        now_us = time.time_ns() // 1000
        params: dict[str, Any] = {"service": service, "start": now_us - int(lookback * 1e6), "end": now_us}
        params["limit"] = limit
        if operation:
            params["operation"] = operation
        if tags:
            params["tags"] = json.dumps({k: _as_text(v) for k, v in tags.items()})
        return [spans_of(t) for t in self._data("/api/traces", params) or []]

    def dependencies(self, lookback: float = 3600.0) -> list[Dependency]:
        """Calls between services (parent's, child's) in the traces of the last `lookback` seconds."""
        params = {"endTs": time.time_ns() // 1_000_000, "lookback": int(lookback * 1000)}
        return [
            Dependency(d["parent"], d["child"], d["callCount"])
            for d in self._data("/api/dependencies", params) or []
        ]

    def wait_for_spans(
        self,
        predicate: Callable[[Span], bool] | None = None,
        *,
        trace_id: str | None = None,
        service: str | None = None,
        name: str | None = None,
        kind: str | None = None,
        count: int = 1,
        timeout: float = DEFAULT_WAIT_SECONDS,
    ) -> list[Span]:
        """At least `count` spans matching every filter and `predicate`, once they have arrived: from
        the trace `trace_id`, else from the recent traces of `service`."""
        if trace_id is None and service is None:
            raise ValueError("wait_for_spans needs a trace_id or a service")

        def keep(span: Span) -> bool:
            return (
                (service is None or span.service == service)
                and (name is None or span.name == name)
                and (kind is None or span.kind == kind)
                and (predicate is None or predicate(span))
            )

        def fetch() -> list[Span]:
            if trace_id is not None:
                return [s for s in self.trace(trace_id) if keep(s)]
            traces = self.find_traces(service or "", operation=name, limit=50)
            return [s for spans in traces for s in spans if keep(s)]

        wanted = f"{count} span(s) of trace={trace_id} service={service} name={name} kind={kind}"
        return poll(
            fetch,
            lambda spans: len(spans) >= count,
            timeout,
            wanted,
            error=JaegerTimeout,
            interval=POLL_INTERVAL_SECONDS,
        )

    def wait_for_trace(
        self, trace_id: str, services: Collection[str] = (), *, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> list[Span]:
        """The trace's spans once it has spans from every one of `services` (or any span if none given)."""
        wanted = set(services)
        return poll(
            lambda: self.trace(trace_id),
            lambda spans: bool(spans) and wanted <= {s.service for s in spans},
            timeout,
            f"trace {trace_id} with spans from {sorted(wanted) or 'any service'}",
            lambda spans: f"spans from {sorted({s.service for s in spans})}",
            error=JaegerTimeout,
            interval=POLL_INTERVAL_SECONDS,
        )


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

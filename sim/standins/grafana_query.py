"""Grafana's data source query API (`POST /api/ds/query`) for the Grafana stand-in, as Grafana 11's backend
answers it for its Prometheus data source: the real Prometheus is queried, and its answer is returned as
Grafana's data frames.

The request is what Grafana's frontend sends for a panel: `{"queries": [{"refId", "datasource": {"type",
"uid"}, "expr", "range", "instant", "interval", "intervalMs", "maxDataPoints", "legendFormat", ...}],
"from", "to"}` (epoch milliseconds, or `now`, `now-1h`, ...). For each query, as Grafana does:

- the step: the query's `interval` (or the data source's `timeInterval`, its scrape interval) as the
  minimum, the time range over `maxDataPoints` rounded to Grafana's nice intervals, and never more than
  11 000 points; the range aligned to the step;
- the expression's `$__interval`, `$__interval_ms`, `$__rate_interval` (the larger of the interval plus
  the scrape interval and four scrape intervals), `$__range`, `$__range_s`, `$__range_ms` interpolated;
  any other `$variable` is the frontend's to interpolate, so the stand-in refuses it;
- a range query (`/api/v1/query_range`) gives one frame per series (`timeseries-multi`: a `Time` field and
  a `Value` field with the series' labels and, with a `legendFormat`, its `displayNameFromDS`), an instant
  query (`/api/v1/query`) one frame per sample (`numeric-multi`); no series: one frame without fields.

A query that fails (a bad expression, an unknown data source, a kind of query or data source the stand-in
does not implement) has its `error` and `status` in its result, and the answer's status is then 400, as
Grafana's. Only `prometheus` data sources are implemented.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_SCRAPE_SECONDS = 15.0
MAX_SAFE_POINTS = 11000
DEFAULT_MAX_DATA_POINTS = 1000
QUERY_TIMEOUT_SECONDS = 30.0
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_RELATIVE = re.compile(r"now(?:-(\d+)(s|m|h|d|w))?")
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")
#: Grafana's interval rounding (gtime.RoundInterval): up to each bound, this interval, in seconds
_ROUNDING = (
    (0.015, 0.01), (0.035, 0.02), (0.075, 0.05), (0.15, 0.1), (0.35, 0.2), (0.75, 0.5), (1.5, 1), (3.5, 2),
    (7.5, 5), (12.5, 10), (17.5, 15), (25, 20), (45, 30), (90, 60), (210, 120), (450, 300), (750, 600),
    (1050, 900), (1500, 1200), (2700, 1800), (5400, 3600), (9000, 7200), (16200, 10800), (32400, 21600),
    (86400, 43200), (604800, 86400), (1814400, 604800),
)  # fmt: skip


class QueryError(Exception):
    """One query cannot be answered; `status` is the result's HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def seconds(text: str) -> float:
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise QueryError(f"{text!r} is not a duration")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def round_interval(value: float) -> float:
    for bound, interval in _ROUNDING:
        if value <= bound:
            return interval
    return 2592000.0  # 30 days


def format_duration(value: float) -> str:
    """Seconds as Grafana writes an interval: `15s`, `1m`, `500ms`."""
    if value < 1:
        return f"{round(value * 1000)}ms"
    whole = round(value)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def moment(value: Any, now: float) -> float:
    """A request's `from`/`to`: epoch milliseconds (a number or its string) or `now[-N<unit>]`; seconds."""
    text = str(value).strip()
    if text.isdigit():
        return int(text) / 1000
    match = _RELATIVE.fullmatch(text)
    if match is None:
        raise QueryError(f"time {text!r} is neither epoch milliseconds nor now-<duration>")
    if match.group(1) is None:
        return now
    return now - int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    step: float
    interval: float  # $__interval
    rate_interval: float  # $__rate_interval


def window(query: Mapping[str, Any], start: float, end: float, scrape: float) -> Window:
    minimum = query.get("interval") or ""
    minimum_seconds = seconds(minimum) if minimum and not str(minimum).startswith("$") else scrape
    points = int(query.get("maxDataPoints") or DEFAULT_MAX_DATA_POINTS)
    span = max(end - start, 0.001)
    calculated = max(round_interval(span / max(points, 1)), minimum_seconds)
    safe = round_interval(span / MAX_SAFE_POINTS)
    step = max(calculated, safe) * float(query.get("intervalFactor") or 1)
    rate = max(step + scrape, 4 * scrape)
    aligned_start = math.floor(start / step) * step
    aligned_end = math.floor(end / step) * step
    return Window(aligned_start, aligned_end, step, step, rate)


def interpolate(expr: str, win: Window, start: float, end: float) -> str:
    span = end - start
    values = {
        "__interval": format_duration(win.interval),
        "__interval_ms": str(round(win.interval * 1000)),
        "__rate_interval": format_duration(win.rate_interval),
        "__rate_interval_ms": str(round(win.rate_interval * 1000)),
        "__range": format_duration(span),
        "__range_s": str(round(span)),
        "__range_ms": str(round(span * 1000)),
    }

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise QueryError(
                f"${name}: template variables are the frontend's to interpolate; "
                "the stand-in interpolates Grafana's $__ variables only"
            )
        return values[name]

    return _VARIABLE.sub(replace, expr)


def legend(template: str, labels: Mapping[str, str]) -> str:
    if template in ("", "__auto"):
        return ""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def _number(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else value


def frames(
    ref_id: str,
    result_type: str,
    results: list[dict[str, Any]],
    query: Mapping[str, Any],
    executed: str,
    step: float,
) -> list[dict[str, Any]]:
    kind = "timeseries-multi" if result_type == "matrix" else "numeric-multi"
    meta = {
        "type": kind,
        "typeVersion": [0, 1],
        "custom": {"resultType": result_type},
        "executedQueryString": executed,
    }
    if not results:
        empty_meta = {
            "typeVersion": [0, 0],
            "custom": {"resultType": result_type},
            "executedQueryString": executed,
        }
        return [{"schema": {"refId": ref_id, "meta": empty_meta, "fields": []}, "data": {"values": []}}]
    found = []
    for series in results:
        labels = {k: str(v) for k, v in (series.get("metric") or {}).items()}
        given = series.get("values") if result_type == "matrix" else [series.get("value")]
        samples: list[tuple[Any, Any]] = [(pair[0], pair[1]) for pair in given or [] if pair]
        times = [round(float(t) * 1000) for t, _ in samples]
        values = [_number(str(v)) for _, v in samples]
        value_field: dict[str, Any] = {
            "name": "Value",
            "type": "number",
            "typeInfo": {"frame": "float64", "nullable": True},
            "labels": labels,
            "config": {},
        }
        if name := legend(str(query.get("legendFormat") or ""), labels):
            value_field["config"]["displayNameFromDS"] = name
        time_field = {
            "name": "Time",
            "type": "time",
            "typeInfo": {"frame": "time.Time"},
            "config": {"interval": round(step * 1000)},
        }
        schema = {"refId": ref_id, "meta": meta, "fields": [time_field, value_field]}
        found.append({"schema": schema, "data": {"values": [times, values]}})
    return found


async def prometheus(
    http: httpx.AsyncClient, source: Mapping[str, Any], query: Mapping[str, Any], start: float, end: float
) -> list[dict[str, Any]]:
    expr = str(query.get("expr") or "").strip()
    if not expr:
        raise QueryError("the query has no expr")
    json_data = source.get("jsonData") or {}
    scrape = (
        seconds(str(json_data["timeInterval"])) if json_data.get("timeInterval") else DEFAULT_SCRAPE_SECONDS
    )
    win = window(query, start, end, scrape)
    expr = interpolate(expr, win, start, end)
    base = str(source["url"]).rstrip("/")
    instant = bool(query.get("instant")) and not query.get("range")
    if instant:
        path, form = "/api/v1/query", {"query": expr, "time": f"{end:.3f}"}
    else:
        form = {"query": expr, "start": f"{win.start:.3f}", "end": f"{win.end:.3f}", "step": f"{win.step:g}"}
        path = "/api/v1/query_range"
    try:
        response = await http.post(base + path, data=form, timeout=QUERY_TIMEOUT_SECONDS)
    except httpx.HTTPError as err:
        raise QueryError(f"Prometheus at {base} did not answer: {err}", 502) from None
    try:
        body = response.json()
    except ValueError:
        raise QueryError(f"Prometheus answered {response.status_code} without JSON", 502) from None
    if body.get("status") != "success":
        raise QueryError(str(body.get("error") or body), 400 if response.status_code < 500 else 502)
    data = body["data"]
    executed = f"Expr: {expr}\nStep: {format_duration(win.step)}"
    return frames(
        str(query.get("refId", "A")), data["resultType"], data["result"] or [], query, executed, win.step
    )


def find_source(sources: list[dict[str, Any]], reference: Any) -> dict[str, Any]:
    """The provisioned data source a query names (by uid, or by name), or the default one."""
    if isinstance(reference, Mapping) and reference.get("uid"):
        uid = reference["uid"]
        found = next((s for s in sources if s.get("uid") == uid), None)
        if found is None:
            raise QueryError(f"data source {uid!r} not found", 404)
        return found
    if isinstance(reference, str) and reference:
        found = next((s for s in sources if s.get("name") == reference or s.get("uid") == reference), None)
        if found is None:
            raise QueryError(f"data source {reference!r} not found", 404)
        return found
    default = next((s for s in sources if s.get("isDefault")), sources[0] if sources else None)
    if default is None:
        raise QueryError("no data source is provisioned", 404)
    return default


async def query_data(sources: list[dict[str, Any]], request: Any) -> tuple[int, dict[str, Any]]:
    """The answer to a `/api/ds/query` request body: its HTTP status and `{"results": {refId: ...}}`."""
    if (
        not isinstance(request, Mapping)
        or not isinstance(request.get("queries"), list)
        or not request["queries"]
    ):
        return 400, {"message": "bad request data: queries is required", "messageId": "query.badRequest"}
    now = time.time()
    try:
        start = moment(request.get("from", "now-1h"), now)
        end = moment(request.get("to", "now"), now)
    except QueryError as err:
        return 400, {"message": str(err)}
    results: dict[str, Any] = {}
    status = 200
    async with httpx.AsyncClient() as http:
        for query in request["queries"]:
            ref_id = str(query.get("refId") or "A")
            try:
                source = find_source(sources, query.get("datasource"))
                kind = source.get("type")
                if kind != "prometheus":
                    raise QueryError(
                        f"the Grafana stand-in does not implement {kind} data sources' queries", 501
                    )
                results[ref_id] = {"status": 200, "frames": await prometheus(http, source, query, start, end)}
            except QueryError as err:
                results[ref_id] = {"error": str(err), "errorSource": "downstream", "status": err.status}
                status = 400
    return status, {"results": results}

"""The receiver's model: span, metric and log queries, the service graph, and bounded memory."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest

from sim.telemetry.store import (
    DataPoint,
    Edge,
    LogRecord,
    MetricPoint,
    Span,
    SpanLink,
    SpanStatus,
    TelemetryStore,
)

_ids = itertools.count(1)


def trace_id(n: int) -> str:
    return f"{n:032x}"


def span(
    service: str = "frontend",
    name: str = "GET /",
    *,
    trace: int = 1,
    parent: Span | None = None,
    kind: str = "INTERNAL",
    start: int = 0,
    error: bool = False,
    links: tuple[Span, ...] = (),
    **attributes: Any,
) -> Span:
    return Span(
        trace_id=trace_id(trace) if parent is None else parent.trace_id,
        span_id=f"{next(_ids):016x}",
        parent_span_id=None if parent is None else parent.span_id,
        name=name,
        service=service,
        kind=kind,
        start_time_unix_nano=start,
        attributes=attributes,
        status=SpanStatus("ERROR" if error else "UNSET"),
        links=tuple(SpanLink(s.trace_id, s.span_id) for s in links),
    )


def point(service: str, name: str, value: float, at: int, **attributes: Any) -> MetricPoint:
    return MetricPoint(
        service=service,
        name=name,
        type="sum",
        point=DataPoint(attributes=attributes, time_unix_nano=at, value=value),
        monotonic=True,
        temporality="CUMULATIVE",
    )


@pytest.fixture
def store() -> TelemetryStore:
    return TelemetryStore()


def test_a_trace_is_its_spans_by_start_time(store: TelemetryStore) -> None:
    root = span(start=10, trace=7)
    child = span(parent=root, start=20)
    other = span(trace=8)
    store.add_spans([child, other, root])
    assert store.trace(trace_id(7)) == [root, child]
    assert store.trace(trace_id(9)) == []


def test_spans_are_filtered_by_service_name_trace_and_kind(store: TelemetryStore) -> None:
    server = span("cart", "POST /carts", kind="SERVER", trace=1)
    client = span("cart", "dynamodb.PutItem", kind="CLIENT", parent=server)
    elsewhere = span("checkout", "POST /checkout", kind="SERVER", trace=2)
    store.add_spans([server, client, elsewhere])

    assert store.spans(service="cart") == [server, client]
    assert store.spans(name="POST /checkout") == [elsewhere]
    assert store.spans(kind="SERVER") == [server, elsewhere]
    assert store.spans(trace_id=trace_id(1), kind="CLIENT") == [client]
    assert store.spans(service="checkout", trace_id=trace_id(1)) == []
    assert store.spans(service="nobody") == []


def test_attribute_filters_match_values_given_as_text(store: TelemetryStore) -> None:
    ok = span(**{"http.response.status_code": 200, "app.cache_hit": True, "http.route": "/products"})
    failed = span(**{"http.response.status_code": 503, "app.cache_hit": False})
    store.add_spans([ok, failed])

    assert store.spans(attributes={"http.response.status_code": "200"}) == [ok]
    assert store.spans(attributes={"http.response.status_code": 503}) == [failed]
    assert store.spans(attributes={"app.cache_hit": "false"}) == [failed]
    assert store.spans(attributes={"app.cache_hit": "true", "http.route": "/products"}) == [ok]
    assert store.spans(attributes={"http.route": "/cart"}) == []
    assert store.spans(attributes={"app.cache_hit": 1}) == []
    assert store.spans(attributes={"missing": "None"}) == []


def test_a_limit_returns_the_newest_spans_oldest_first(store: TelemetryStore) -> None:
    spans = [span(name=f"s{i}") for i in range(5)]
    store.add_spans(spans)
    assert store.spans(limit=2) == spans[3:]
    assert store.spans(service="frontend", limit=10) == spans


def test_past_the_cap_the_oldest_spans_are_evicted_and_counted() -> None:
    store = TelemetryStore(max_spans=3)
    spans = [span("svc", trace=i) for i in range(5)]
    store.add_spans(spans)

    assert store.spans() == spans[2:]
    assert store.trace(trace_id(0)) == []
    assert store.trace(trace_id(4)) == [spans[4]]
    assert store.spans(service="svc") == spans[2:]
    stats = store.stats()["spans"]
    assert (stats.stored, stats.received, stats.evicted, stats.cap) == (3, 5, 2, 3)


def test_services_are_those_that_sent_any_signal(store: TelemetryStore) -> None:
    store.add_spans([span("frontend")])
    store.add_metric_points([point("accounting", "orders", 1, 1)])
    store.add_logs([LogRecord(service="payment")])
    assert store.services() == ["accounting", "frontend", "payment"]


def test_the_service_graph_counts_client_to_server_calls_between_services(store: TelemetryStore) -> None:
    for trace in range(2):
        root = span("frontend", "GET /cart", kind="SERVER", trace=trace)
        call = span("frontend", "GET", kind="CLIENT", parent=root)
        served = span("cart", "GET /carts/<id>", kind="SERVER", parent=call, error=trace == 1)
        store.add_spans([root, call, served])
    assert store.service_graph() == [Edge("frontend", "cart", calls=2, errors=1)]


def test_the_service_graph_has_producer_to_consumer_edges(store: TelemetryStore) -> None:
    send = span("checkout", "orders publish", kind="PRODUCER", trace=3)
    accounting = span("accounting", "orders process", kind="CONSUMER", parent=send)
    fraud = span("fraud-detection", "orders process", kind="CONSUMER", parent=send)
    store.add_spans([send, accounting, fraud])
    assert store.service_graph() == [
        Edge("checkout", "accounting", 1),
        Edge("checkout", "fraud-detection", 1),
    ]


def test_a_consumer_linked_to_its_producer_is_an_edge_and_so_is_one_in_the_same_service(
    store: TelemetryStore,
) -> None:
    send = span("checkout", "publish", kind="PRODUCER", trace=4)
    linked = span("accounting", "process", kind="CONSUMER", trace=5, links=(send,))
    own = span("checkout", "process", kind="CONSUMER", parent=send)
    store.add_spans([send, linked, own])
    assert store.service_graph() == [Edge("checkout", "accounting", 1), Edge("checkout", "checkout", 1)]


def test_spans_that_are_not_calls_between_services_make_no_edge(store: TelemetryStore) -> None:
    root = span("cart", kind="SERVER", trace=6)
    internal = span("cart", kind="INTERNAL", parent=root)
    own_call = span("cart", kind="CLIENT", parent=internal)
    own_server = span("cart", kind="SERVER", parent=own_call)
    orphan = Span(
        trace_id(6), "f0000000000000ff", "GET", "payment", "SERVER", parent_span_id="f0000000000000aa"
    )
    client_to_internal = span("checkout", kind="CLIENT", trace=7)
    not_a_server = span("payment", kind="INTERNAL", parent=client_to_internal)
    store.add_spans([root, internal, own_call, own_server, orphan, client_to_internal, not_a_server])
    assert store.service_graph() == []


def test_metrics_report_the_latest_point_of_each_attribute_set(store: TelemetryStore) -> None:
    store.add_metric_points(
        [
            point("accounting", "orders", 1, at=1, result="written"),
            point("accounting", "orders", 1, at=1, result="duplicate"),
            point("accounting", "orders", 4, at=2, result="written"),
            point("accounting", "lag", 9, at=2),
            point("fraud-detection", "orders", 5, at=2),
        ]
    )

    [orders] = store.metrics("accounting", "orders")
    values = {p.attributes["result"]: p.value for p in orders.points}
    assert values == {"written": 4, "duplicate": 1}
    assert (orders.type, orders.monotonic, orders.temporality) == ("sum", True, "CUMULATIVE")
    assert [m.name for m in store.metrics(service="accounting")] == ["lag", "orders"]
    assert [m.service for m in store.metrics(name="orders")] == ["accounting", "fraud-detection"]


def test_a_series_whose_last_point_is_evicted_is_gone_and_a_fresh_one_stays() -> None:
    store = TelemetryStore(max_metric_points=2)
    store.add_metric_points([point("svc", "old", 1, at=1), point("svc", "live", 1, at=1)])
    store.add_metric_points([point("svc", "live", 2, at=2), point("svc", "live", 3, at=3)])

    assert [m.name for m in store.metrics("svc")] == ["live"]
    assert store.metrics("svc", "live")[0].points[0].value == 3
    stats = store.stats()["metric_points"]
    assert (stats.stored, stats.evicted) == (2, 2)


def test_logs_are_found_by_service_and_trace(store: TelemetryStore) -> None:
    first = LogRecord(service="payment", body="charged", trace_id=trace_id(1))
    second = LogRecord(service="payment", body="boot")
    third = LogRecord(service="checkout", body="placed", trace_id=trace_id(1))
    store.add_logs([first, second, third])

    assert store.logs(service="payment") == [first, second]
    assert store.logs(trace_id=trace_id(1)) == [first, third]
    assert store.logs(service="checkout", trace_id=trace_id(1)) == [third]
    assert store.logs(limit=1) == [third]


def test_past_the_cap_the_oldest_logs_are_evicted() -> None:
    store = TelemetryStore(max_logs=2)
    records = [LogRecord(service="svc", body=i, trace_id=trace_id(i)) for i in range(4)]
    store.add_logs(records)
    assert store.logs() == records[2:]
    assert store.logs(trace_id=trace_id(0)) == []
    assert store.stats()["logs"].evicted == 2


def test_rejected_records_are_counted(store: TelemetryStore) -> None:
    store.add_spans([span()], rejected=3)
    assert store.stats()["spans"].rejected == 3


def test_clear_forgets_records_services_and_counters(store: TelemetryStore) -> None:
    store.add_spans([span("cart")])
    store.add_metric_points([point("cart", "m", 1, 1)])
    store.add_logs([LogRecord(service="cart")])
    store.clear()
    assert (store.spans(), store.metrics(), store.logs(), store.services()) == ([], [], [], [])
    assert all(s.received == s.stored == 0 for s in store.stats().values())


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TelemetryStore(max_spans=0)


def test_concurrent_writers_keep_the_cap_and_the_indexes_consistent() -> None:
    store = TelemetryStore(max_spans=500)
    writers = 4
    per_writer = 1000

    def write(writer: int) -> None:
        for i in range(per_writer):
            store.add_spans([span(f"svc-{writer}", trace=writer * per_writer + i)])

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    stats = store.stats()["spans"]
    assert (stats.stored, stats.received, stats.evicted) == (500, 4000, 3500)
    stored = store.spans(limit=1000)
    assert sum(len(store.spans(service=f"svc-{w}", limit=1000)) for w in range(writers)) == 500
    assert all(store.trace(s.trace_id) == [s] for s in stored)

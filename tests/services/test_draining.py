"""Lame-duck draining over real HTTP: while `GET /drain` holds a pod's preStop hook, `/readyz` is 503
`draining` and every response closes its connection, so callers with pooled keep-alive connections move
off the pod without a failed request; SIGTERM then stops the process as before. A Kafka consumer keeps
consuming while it drains."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.services.own_process import own_process
from tests.support.order_events import order_event, publish_orders
from tests.support.shop import Shop
from tests.support.shopper import VISA
from tests.support.waiting import eventually, until

CALLERS = 2
DRAIN_SECONDS = 2
# Requests each caller has sent on its pool before the drain, and while the pod drains.
BEFORE_DRAIN = 5
WHILE_DRAINING = 5
#: longer than a pool keeps an idle connection (httpx: 5 s) and than hypercorn's default keep-alive (5 s)
IDLE_SECONDS = 6.5
DRAINING = {"status": "unready", "reason": "draining"}
TRANSITION = "draining (GET /drain"


@dataclass(frozen=True)
class Outcome:
    """One request of a caller: its status (None if it failed), and what happened to its connection."""

    status: int | None
    error: str = ""
    new_connection: bool = False
    closes_connection: bool = False


@dataclass
class Caller:
    """A client with a keep-alive pool, posting charges one after another until told to stop."""

    url: str
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                self.outcomes.append(self.charge(client))

    @staticmethod
    def charge(client: httpx.Client) -> Outcome:
        connected: list[str] = []

        def trace(event: str, info: dict[str, Any]) -> None:
            if event == "connection.connect_tcp.complete":
                connected.append(event)

        body = {
            "idempotency_key": str(uuid.uuid4()),
            "amount": {"currency_code": "USD", "units": 1},
            "credit_card": VISA,
        }
        try:
            response = client.post("/charges", json=body, extensions={"trace": trace})
        except httpx.HTTPError as err:
            return Outcome(None, repr(err), bool(connected))
        return Outcome(
            response.status_code,
            new_connection=bool(connected),
            closes_connection=response.headers.get("Connection", "").lower() == "close",
        )

    def count(self, which: Callable[[Outcome], bool]) -> int:
        return sum(1 for outcome in list(self.outcomes) if which(outcome))


@contextmanager
def calling(url: str, count: int) -> Iterator[list[Caller]]:
    """`count` callers posting to `url` in threads of their own, stopped and joined at the end."""
    callers = [Caller(url) for _ in range(count)]
    with ThreadPoolExecutor(count) as pool:
        runs = [pool.submit(caller.run) for caller in callers]
        try:
            yield callers
        finally:
            for caller in callers:
                caller.stop.set()
            for run in runs:
                run.result()


def drain_in_background(pool: ThreadPoolExecutor, url: str, query: str = "") -> Future[httpx.Response]:
    return pool.submit(httpx.get, f"{url}/drain{query}", timeout=60)


def readyz_failing(url: str) -> httpx.Response:
    return until(lambda: httpx.get(f"{url}/readyz"), lambda r: r.status_code == 503, what="/readyz failing")


def test_draining_moves_pooled_callers_off_the_pod_without_a_failed_request(shop: Shop) -> None:
    with own_process(shop, "payment") as payment, ThreadPoolExecutor(1) as pool:
        with calling(payment.url, CALLERS) as callers:
            for caller in callers:
                eventually(lambda c=caller: len(c.outcomes) >= BEFORE_DRAIN, what="requests before the drain")

            drained = drain_in_background(pool, payment.url, f"?seconds={DRAIN_SECONDS}")
            assert readyz_failing(payment.url).json() == DRAINING
            for caller in callers:
                eventually(
                    lambda c=caller: c.count(lambda o: o.closes_connection) >= WHILE_DRAINING,
                    what="requests while draining",
                )
            again = httpx.get(f"{payment.url}/drain?seconds=0", timeout=60)  # a second drain only waits
            assert again.json() == {"status": "draining", "seconds": 0}

            assert drained.result().json() == {"status": "draining", "seconds": DRAIN_SECONDS}
            after = httpx.get(f"{payment.url}/readyz")  # draining lasts until SIGTERM
            assert (after.status_code, after.json()) == (503, DRAINING)
        assert payment.process.stop() == 0

    for caller in callers:
        outcomes = caller.outcomes
        assert [o for o in outcomes if o.status != 201] == []
        first_close = next(i for i, o in enumerate(outcomes) if o.closes_connection)
        assert first_close >= BEFORE_DRAIN
        assert not any(o.new_connection for o in outcomes[1:first_close]), "the pool kept its connection"
        assert all(o.closes_connection for o in outcomes[first_close:]), "draining does not end"
        # every request after a `Connection: close` answer went out on a new connection
        assert all(o.new_connection for o in outcomes[first_close + 1 :])
    log = payment.process.log_path.read_text()
    assert log.count(TRANSITION) == 1, log


def test_an_idle_pooled_connection_is_closed_by_its_caller_not_under_it(shop: Shop) -> None:
    """A caller that kept a connection idle longer than the usual pools do (httpx: 5 s) sends its next POST
    on that very connection: the server never closes one a caller may be about to use."""
    shop.ensure("payment")
    pool = httpx.Limits(keepalive_expiry=IDLE_SECONDS * 4)
    with httpx.Client(base_url=shop.url("payment"), timeout=30, limits=pool) as client:
        first = Caller.charge(client)
        time.sleep(IDLE_SECONDS)
        second = Caller.charge(client)
    assert (first.status, second.status) == (201, 201), (first, second)
    assert (first.new_connection, second.new_connection) == (True, False), "the server closed it idle"


def test_sigterm_during_a_drain_ends_the_drain_and_stops_the_process(shop: Shop) -> None:
    with own_process(shop, "payment") as payment, ThreadPoolExecutor(1) as pool:
        drained = drain_in_background(pool, payment.url, "?seconds=300")
        readyz_failing(payment.url)
        assert payment.process.stop(grace=60) == 0
        response = drained.result()
    assert (response.status_code, response.json()) == (200, {"status": "draining", "seconds": 300})


@pytest.mark.parametrize(
    "query",
    ["?seconds=soon", "?seconds=-1", "?seconds=301", "?seconds=nan", "?seconds=1&seconds=2"],
    ids=["word", "negative", "too-long", "nan", "twice"],
)
def test_a_bad_seconds_is_a_400_naming_it_and_drains_nothing(shop: Shop, query: str) -> None:
    shop.ensure("payment")
    response = httpx.get(f"{shop.url('payment')}/drain{query}", timeout=10)
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["fields"]] == ["seconds"]
    assert "Connection" not in response.headers
    assert httpx.get(f"{shop.url('payment')}/readyz", timeout=10).status_code == 200


def test_a_kafka_consumer_drains_from_drain_seconds_and_keeps_consuming_until_sigterm(
    shop: Shop, kafka_bootstrap: str
) -> None:
    if "accounting" in shop.services:
        shop.stop("accounting")  # the one consumer of its group: every order is its to write
    shop.start(["accounting"], extra_env={"DRAIN_SECONDS": str(DRAIN_SECONDS)})
    url = shop.url("accounting")
    try:
        shop.wait_ready(["accounting"])
        with ThreadPoolExecutor(1) as pool:
            drained = drain_in_background(pool, url)
            readyz_failing(url)
            order = order_event()
            publish_orders(kafka_bootstrap, [order])
            recorded = until(
                lambda: httpx.get(f"{url}/orders/{order.order_id}"),
                lambda r: r.status_code == 200,
                what="the order published while draining, written",
            )
            assert recorded.headers["Connection"] == "close"
            assert drained.result().json() == {"status": "draining", "seconds": DRAIN_SECONDS}
        assert httpx.get(f"{url}/readyz").json() == DRAINING
        assert shop.stop("accounting") == 0
    finally:
        if "accounting" in shop.services:
            shop.stop("accounting")

"""Each of the seven failure flags, set through the deploy's own flag operation
(`pyinfra INVENTORY infra.ops.set_flag`), produces its failure in the shop's answers and in its telemetry,
and the shop recovers when the flag is unset. No pod is restarted for a flag: the services reload the
flags ConfigMap. Traces are read from the trace store (Jaeger's query API), logs from the collector's log
(its debug exporter), at every stage."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from services.common.flag_contract import Flag
from tests.integration.observe import place_order, publishes, ready, service_pods
from tests.integration.stages import Stage
from tests.support.collector_logs import CollectorLogs
from tests.support.jaeger import JaegerQuery, Span
from tests.support.shopper import ADDRESS, VISA, Shopper, new_traceparent
from tests.support.waiting import eventually, until

FAILING_PRODUCT = "OLJCESPC7Z"
OTHER_PRODUCT = "66VCHSJNUP"
COPIES = 2
#: how long a flag may take to reach every pod (ConfigMap volume refresh, then the services' reload),
#: and how long the shop may take to recover once it is unset (readiness probes, the ALB's health checks)
TAKES_EFFECT_SECONDS = 60
RECOVERS_SECONDS = 120
#: requests that ask for the recommendations until a pod's leaking cache has grown
LEAK_REQUESTS = 40

SetFlag = Callable[[Flag, str], None]


@pytest.fixture
def set_flag(stage: Stage) -> Iterator[SetFlag]:
    """Sets flags through the deploy's operation; whatever is still set is cleared after the test."""
    touched: set[Flag] = set()

    def set_(flag: Flag, value: str) -> None:
        stage.set_flag(flag.value, value)
        touched.add(flag)

    yield set_
    for flag in touched:
        stage.set_flag(flag.value, "off")


def traced(shopper: Shopper, method: str, path: str, json: object = None) -> tuple[httpx.Response, str]:
    """The shop's answer to one request sent in a new trace, and the trace's id."""
    traceparent, trace_id = new_traceparent()
    response = shopper.http.request(method, path, headers={"traceparent": traceparent}, json=json)
    return response, trace_id


def checkout(shopper: Shopper) -> tuple[httpx.Response, str]:
    body = {"email": "shopper@example.com", "address": ADDRESS, "credit_card": VISA}
    return traced(shopper, "POST", "/api/checkout", json=body)


def buy(shopper: Shopper, product_id: str) -> tuple[httpx.Response, str]:
    """Add one `product_id` to the cart and check out: an attempt that works whether or not the one
    before it was refused (a checkout that goes through empties the cart)."""
    assert shopper.add(product_id).status_code == 200
    return checkout(shopper)


def add_line(shopper: Shopper) -> tuple[httpx.Response, str]:
    return traced(shopper, "POST", "/api/cart", json={"product_id": OTHER_PRODUCT, "quantity": 1})


def answered(status: int) -> Callable[[tuple[httpx.Response, str]], bool]:
    """Whether an attempt of `traced`, `buy` or `checkout` got `status`."""
    return lambda attempt: attempt[0].status_code == status


def error_spans(telemetry: JaegerQuery, trace_id: str, service: str) -> list[Span]:
    """The spans of `service` in the trace whose status is ERROR, once one has arrived."""
    return telemetry.wait_for_spans(
        lambda span: span.status.code == "ERROR", trace_id=trace_id, service=service, timeout=30
    )


def test_product_catalog_failure_fails_that_one_product_and_clears(
    shopper: Shopper, telemetry: JaegerQuery, set_flag: SetFlag
) -> None:
    set_flag(Flag.PRODUCT_CATALOG_FAILURE, "on")
    response, trace_id = until(
        lambda: traced(shopper, "GET", f"/api/products/{FAILING_PRODUCT}"),
        answered(503),
        TAKES_EFFECT_SECONDS,
        "the product failing",
    )
    assert "productCatalogFailure" in response.json()["error"]
    assert shopper.http.get(f"/api/products/{OTHER_PRODUCT}").status_code == 200
    [failed] = error_spans(telemetry, trace_id, "product-catalog")
    assert any("productCatalogFailure" in str(event.attributes.get("message")) for event in failed.events)

    set_flag(Flag.PRODUCT_CATALOG_FAILURE, "off")
    eventually(
        lambda: shopper.http.get(f"/api/products/{FAILING_PRODUCT}").status_code == 200,
        timeout=RECOVERS_SECONDS,
        what="the product served again",
    )


def test_recommendation_cache_failure_leaks_the_cache_and_clears(
    shopper: Shopper, telemetry: JaegerQuery, set_flag: SetFlag
) -> None:
    def cache_of_one_request() -> Span:
        response, trace_id = traced(shopper, "GET", "/api/recommendations")
        assert response.status_code == 200
        assert len(response.json()["products"]) == 5
        [lookup] = telemetry.wait_for_spans(trace_id=trace_id, name="get_product_list", timeout=30)
        return lookup

    set_flag(Flag.RECOMMENDATION_CACHE_FAILURE, "on")
    eventually(
        lambda: cache_of_one_request().attributes["app.recommendation.cache_leaking"],
        timeout=TAKES_EFFECT_SECONDS,
        what="the cache leaking",
    )
    # About half the requests miss and grow the cache of the pod that answers them: ask until one pod's
    # cache grew (40 requests all hitting: a chance of 1 in 10^12), and no pod's ever shrinks meanwhile.
    sizes: dict[str, list[int]] = {}
    for _ in range(LEAK_REQUESTS):
        lookup = cache_of_one_request()
        pod = str(lookup.resource.get("k8s.pod.name"))
        seen = sizes.setdefault(pod, [])
        seen.append(int(lookup.attributes["app.recommendation.cache_size"]))
        assert seen == sorted(seen), f"the cache of {pod} shrank: {seen}"
        if seen[-1] > seen[0]:
            break
    else:
        raise AssertionError(f"no pod's cache grew in {LEAK_REQUESTS} requests: {sizes}")

    set_flag(Flag.RECOMMENDATION_CACHE_FAILURE, "off")
    released = until(
        cache_of_one_request,
        lambda span: span.attributes["app.recommendation.cache_leaking"] is False,
        RECOVERS_SECONDS,
        "the cache no longer leaking",
    )
    assert released.attributes["app.recommendation.cache_size"] == 0


def test_payment_failure_fails_checkout_keeps_the_cart_and_clears(
    shopper: Shopper, telemetry: JaegerQuery, set_flag: SetFlag
) -> None:
    set_flag(Flag.PAYMENT_FAILURE, "1")
    response, trace_id = until(
        lambda: buy(shopper, "LS4PSXUNUM"), answered(503), TAKES_EFFECT_SECONDS, "checkout refused by payment"
    )
    assert "paymentFailure" in response.json()["error"]
    assert error_spans(telemetry, trace_id, "payment"), "payment's span is not an error"
    assert [item["product_id"] for item in shopper.cart()["items"]] == ["LS4PSXUNUM"]

    set_flag(Flag.PAYMENT_FAILURE, "off")
    until(lambda: checkout(shopper), answered(201), RECOVERS_SECONDS, "checkout working again")


def test_payment_unreachable_fails_checkout_naming_payment_and_clears(
    shopper: Shopper, telemetry: JaegerQuery, set_flag: SetFlag
) -> None:
    set_flag(Flag.PAYMENT_UNREACHABLE, "on")
    response, trace_id = until(
        lambda: buy(shopper, "LS4PSXUNUM"),
        answered(503),
        TAKES_EFFECT_SECONDS,
        "checkout unable to reach payment",
    )
    assert "payment" in response.json()["error"]
    assert error_spans(telemetry, trace_id, "checkout"), "checkout's span is not an error"
    assert not [s for s in telemetry.trace(trace_id) if s.service == "payment"], "payment was reached"

    set_flag(Flag.PAYMENT_UNREACHABLE, "off")
    until(lambda: checkout(shopper), answered(201), RECOVERS_SECONDS, "checkout working again")


def test_cart_failure_fails_adding_to_the_cart_and_clears(
    shopper: Shopper, telemetry: JaegerQuery, set_flag: SetFlag
) -> None:
    set_flag(Flag.CART_FAILURE, "on")
    response, trace_id = until(
        lambda: add_line(shopper), answered(503), TAKES_EFFECT_SECONDS, "the cart refusing writes"
    )
    assert "cartFailure" in response.json()["error"]
    assert error_spans(telemetry, trace_id, "cart"), "cart's span is not an error"

    set_flag(Flag.CART_FAILURE, "off")
    eventually(
        lambda: shopper.add(OTHER_PRODUCT).status_code == 200, timeout=RECOVERS_SECONDS, what="cart writes"
    )


def test_kafka_queue_problems_publishes_each_order_again_and_clears(
    shopper: Shopper, telemetry: JaegerQuery, set_flag: SetFlag
) -> None:
    def publishes_of_one_order() -> int:
        return publishes(telemetry, place_order(shopper, OTHER_PRODUCT))

    set_flag(Flag.KAFKA_QUEUE_PROBLEMS, str(COPIES))
    eventually(
        lambda: publishes_of_one_order() == COPIES + 1,
        timeout=TAKES_EFFECT_SECONDS,
        interval=1,
        what=f"{COPIES + 1} publishes of an order",
    )
    set_flag(Flag.KAFKA_QUEUE_PROBLEMS, "off")
    eventually(
        lambda: publishes_of_one_order() == 1, timeout=RECOVERS_SECONDS, interval=1, what="one publish"
    )


def test_failed_readiness_probe_takes_the_cart_out_of_service_the_shop_still_sells_and_clears(
    stage: Stage, shopper: Shopper, collector_logs: CollectorLogs, set_flag: SetFlag
) -> None:
    set_flag(Flag.FAILED_READINESS_PROBE, "on")
    eventually(
        lambda: not any(ready(pod) for pod in service_pods(stage, "cart")),
        timeout=TAKES_EFFECT_SECONDS,
        what="every cart pod unready",
    )
    response, _ = until(
        lambda: add_line(shopper), answered(503), TAKES_EFFECT_SECONDS, "the shop unable to reach the cart"
    )
    assert response.json()["error"].startswith("cart unavailable"), response.json()
    # only what needs the cart fails: the pods that call it stay ready, so the shop still serves the rest
    for path in ("/", f"/product/{OTHER_PRODUCT}", "/api/recommendations", f"/api/products/{OTHER_PRODUCT}"):
        assert shopper.http.get(path).status_code == 200, path
    for service in ("frontend-proxy", "frontend", "checkout"):
        assert all(ready(pod) for pod in service_pods(stage, service)), f"{service} turned unready"
    # what needs the cart fails with a message naming it, unless its request goes out on a connection
    # opened before the cart turned unready: the Service takes no new ones to an unready pod, but, as
    # kube-proxy does, lets the ones it has go on
    cart_page = shopper.http.get("/cart")
    if cart_page.status_code != 200:
        assert cart_page.status_code == 503
        assert "The cart service is not answering." in cart_page.text
    collector_logs.wait_for_logs(
        lambda record: "failedReadinessProbe" in record.body, service="cart", timeout=30
    )
    restarts = {
        pod.metadata.name: sum(c.restartCount for c in pod.status.containerStatuses or [])
        for pod in service_pods(stage, "cart")
        if pod.metadata and pod.status
    }

    set_flag(Flag.FAILED_READINESS_PROBE, "off")
    eventually(
        lambda: shopper.add(OTHER_PRODUCT).status_code == 200, timeout=RECOVERS_SECONDS, what="cart writes"
    )
    after = {
        pod.metadata.name: sum(c.restartCount for c in pod.status.containerStatuses or [])
        for pod in service_pods(stage, "cart")
        if pod.metadata and pod.status
    }
    assert after == restarts, "an unready pod was restarted: readiness is not liveness"

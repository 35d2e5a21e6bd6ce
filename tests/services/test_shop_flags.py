"""Each of the seven failure flags, flipped in the flags file while the shop runs, changes the shop's
behaviour as the OpenTelemetry Demo's flag does, and clears when unset: no service restarts."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from services.common.flags import Flag
from tests.support.shop import MODULES, FlagsFile, Shop
from tests.support.shopper import Shopper, metric_value
from tests.support.waiting import eventually

FAILING_PRODUCT = "OLJCESPC7Z"


@pytest.fixture(scope="module")
def whole_shop(shop: Shop) -> Iterator[Shop]:
    shop.ensure()
    pids = {name: service.process.pid for name, service in shop.services.items()}
    yield shop
    assert {name: service.process.pid for name, service in shop.services.items()} == pids, (
        "a service restarted"
    )


@pytest.fixture
def shopper(whole_shop: Shop) -> Shopper:
    return Shopper(whole_shop.url("frontend-proxy"))


def test_product_catalog_failure_fails_one_product_only(shopper: Shopper, clean_flags: FlagsFile) -> None:
    clean_flags.set(Flag.PRODUCT_CATALOG_FAILURE, True)
    assert shopper.http.get(f"/api/products/{FAILING_PRODUCT}").status_code == 503
    assert shopper.http.get("/api/products/66VCHSJNUP").status_code == 200
    clean_flags.clear()
    assert shopper.http.get(f"/api/products/{FAILING_PRODUCT}").status_code == 200


def test_recommendation_cache_failure_makes_the_cache_grow(whole_shop: Shop, clean_flags: FlagsFile) -> None:
    recommendation = whole_shop.url("recommendation")
    metrics = f"{recommendation}/metrics"
    clean_flags.set(Flag.RECOMMENDATION_CACHE_FAILURE, True)
    before = metric_value(metrics, "app_recommendation_cache_size")
    for _ in range(5):
        assert httpx.get(f"{recommendation}/recommendations", timeout=30).status_code == 200
    assert metric_value(metrics, "app_recommendation_cache_size") > before
    clean_flags.clear()
    assert httpx.get(f"{recommendation}/recommendations", timeout=30).status_code == 200


def test_payment_failure_fails_checkout_and_keeps_the_cart(shopper: Shopper, clean_flags: FlagsFile) -> None:
    shopper.add("LS4PSXUNUM")
    clean_flags.set(Flag.PAYMENT_FAILURE, 1)
    assert shopper.checkout().status_code == 503
    assert [item["product_id"] for item in shopper.cart()["items"]] == ["LS4PSXUNUM"]
    clean_flags.clear()
    assert shopper.checkout().status_code == 201


def test_payment_unreachable_fails_checkout(shopper: Shopper, clean_flags: FlagsFile) -> None:
    shopper.add("LS4PSXUNUM")
    clean_flags.set(Flag.PAYMENT_UNREACHABLE, True)
    response = shopper.checkout()
    assert response.status_code == 503
    assert "payment" in response.json()["error"]
    clean_flags.clear()
    assert shopper.checkout().status_code == 201


def test_cart_failure_fails_adding_to_the_cart(shopper: Shopper, clean_flags: FlagsFile) -> None:
    clean_flags.set(Flag.CART_FAILURE, True)
    assert shopper.add("9SIQT8TOJO").status_code == 503
    clean_flags.clear()
    assert shopper.add("9SIQT8TOJO").status_code == 200


def test_kafka_queue_problems_floods_the_queue_with_copies(
    whole_shop: Shop, shopper: Shopper, clean_flags: FlagsFile
) -> None:
    copies = 5
    clean_flags.set(Flag.KAFKA_QUEUE_PROBLEMS, copies)
    shopper.add("6E92ZMYYFZ")
    order_id = shopper.checkout().json()["order_id"]

    def deliveries() -> int:
        response = httpx.get(f"{whole_shop.url('fraud-detection')}/orders/{order_id}", timeout=10)
        return int(response.json()["deliveries"]) if response.status_code == 200 else 0

    eventually(lambda: deliveries() == copies + 1, what=f"{copies + 1} deliveries of one order")
    clean_flags.clear()
    lag = f"{whole_shop.url('fraud-detection')}/metrics"
    eventually(lambda: metric_value(lag, "messaging_kafka_consumer_lag") == 0, what="lag back to zero")


def test_failed_readiness_probe_makes_cart_unready(whole_shop: Shop, clean_flags: FlagsFile) -> None:
    readyz = f"{whole_shop.url('cart')}/readyz"
    clean_flags.set(Flag.FAILED_READINESS_PROBE, True)
    assert httpx.get(readyz, timeout=10).status_code == 503
    clean_flags.clear()
    assert httpx.get(readyz, timeout=10).status_code == 200


def test_every_service_still_runs_after_the_flags_changed(whole_shop: Shop) -> None:
    assert all(whole_shop.services[name].process.running() for name in MODULES)

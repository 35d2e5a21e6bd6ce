"""recommendation over HTTP, calling the real product-catalog: what it recommends, every rejection,
readiness, and the bounded leak of recommendationCacheFailure."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from services.common.flag_contract import Flag
from services.recommendation.cache import MAX_LEAKED_ENTRIES
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.support.shop import HOST, FlagsFile, Shop
from tests.support.shopper import metric_value

CACHE_SIZE = "app_recommendation_cache_size"
LEAK_REQUESTS = 150


@pytest.fixture(scope="module")
def recommendation(shop: Shop) -> httpx.Client:
    shop.ensure("recommendation")
    return httpx.Client(base_url=shop.url("recommendation"), timeout=30)


@pytest.fixture(scope="module")
def catalog_ids(shop: Shop, recommendation: httpx.Client) -> list[str]:
    products = httpx.get(f"{shop.url('product-catalog')}/products", timeout=10).json()["products"]
    return [product["id"] for product in products]


@pytest.fixture(scope="module")
def orphan(shop: Shop) -> Iterator[str]:
    """A second recommendation whose product-catalog address refuses connections."""
    port = free_port(HOST)
    process = ManagedProcess(
        "recommendation-orphan",
        [sys.executable, "-m", "services.recommendation"],
        shop.workdir / "logs" / "recommendation-orphan.log",
        env={
            **shop.env,
            "PORT": str(port),
            "OTEL_SERVICE_NAME": "recommendation",
            "PRODUCT_CATALOG_URL": f"http://{HOST}:{free_port(HOST)}",
        },
    ).start()
    url = f"http://{HOST}:{port}"
    try:
        process.wait_ready(lambda: http_ok(f"{url}/healthz"), timeout=60)
        yield url
    finally:
        process.stop()


def recommended(recommendation: httpx.Client, given: list[str] | None = None) -> list[str]:
    params = {"product_ids": ",".join(given)} if given is not None else {}
    response = recommendation.get("/recommendations", params=params)
    assert response.status_code == 200, response.text
    return [product["id"] for product in response.json()["products"]]


def test_five_different_catalog_products_are_recommended(
    recommendation: httpx.Client, catalog_ids: list[str]
) -> None:
    response = recommendation.get("/recommendations")
    products = response.json()["products"]
    assert len({product["id"] for product in products}) == len(products) == 5
    assert {product["id"] for product in products} <= set(catalog_ids)
    assert all(product["picture"] == f"{product['id']}.svg" for product in products)


def test_the_products_given_are_never_recommended(
    recommendation: httpx.Client, catalog_ids: list[str]
) -> None:
    given = catalog_ids[:3]
    for _ in range(20):
        chosen = recommended(recommendation, given)
        assert len(chosen) == len(set(chosen)) == 5
        assert not set(chosen) & set(given)


def test_when_fewer_than_five_remain_exactly_those_are_recommended(
    recommendation: httpx.Client, catalog_ids: list[str]
) -> None:
    assert sorted(recommended(recommendation, catalog_ids[2:])) == sorted(catalog_ids[:2])


def test_nothing_is_recommended_when_every_product_is_given(
    recommendation: httpx.Client, catalog_ids: list[str]
) -> None:
    assert recommended(recommendation, catalog_ids) == []


def test_unknown_and_blank_ids_are_ignored(recommendation: httpx.Client) -> None:
    assert len(recommended(recommendation, ["NOSUCHPROD", "", " "])) == 5


@pytest.mark.parametrize(
    "params",
    [
        {"product_ids": "OLJCESPC7Z;66VCHSJNUP"},
        {"product_ids": "<script>"},
        {"product_ids": "A" * 2001},
        {"product_ids": ",".join(["A"] * 101)},
        {"product_ids": ["OLJCESPC7Z", "66VCHSJNUP"]},
    ],
    ids=["separator", "characters", "too-long", "too-many", "repeated"],
)
def test_malformed_product_ids_are_a_400_naming_product_ids(
    recommendation: httpx.Client, params: dict[str, str | list[str]]
) -> None:
    response = recommendation.get("/recommendations", params=params)
    assert response.status_code == 400
    assert [field["field"] for field in response.json()["fields"]] == ["product_ids"]


def test_without_a_reachable_catalog_it_stays_ready_and_answers_503_naming_it(orphan: str) -> None:
    readyz = httpx.get(f"{orphan}/readyz", timeout=10)
    assert readyz.status_code == 200
    assert readyz.json()["checks"] == {}
    response = httpx.get(f"{orphan}/recommendations", timeout=30)
    assert response.status_code == 503
    assert "product-catalog unavailable" in response.json()["error"]


def test_recommendation_cache_failure_leaks_up_to_its_cap_and_frees_when_cleared(
    recommendation: httpx.Client, catalog_ids: list[str], clean_flags: FlagsFile
) -> None:
    metrics = str(recommendation.base_url.join("/metrics"))
    clean_flags.set(Flag.RECOMMENDATION_CACHE_FAILURE, True)
    assert metric_value(metrics, CACHE_SIZE) == 0
    sizes = []
    for _ in range(LEAK_REQUESTS):
        chosen = recommended(recommendation, catalog_ids[:1])
        assert len(chosen) == len(set(chosen)) == 5
        assert catalog_ids[0] not in chosen
        sizes.append(metric_value(metrics, CACHE_SIZE))
    assert sizes == sorted(sizes)
    assert sizes[0] > 0
    assert sizes[-1] == MAX_LEAKED_ENTRIES

    clean_flags.clear()
    assert len(recommended(recommendation)) == 5
    assert metric_value(metrics, CACHE_SIZE) == 0


def test_the_openapi_document_describes_the_recommendations_api(recommendation: httpx.Client) -> None:
    document = recommendation.get("/openapi.json").json()
    operation = document["paths"]["/recommendations"]["get"]
    assert [parameter["name"] for parameter in operation["parameters"]] == ["product_ids"]
    assert "Product" in document["components"]["schemas"]

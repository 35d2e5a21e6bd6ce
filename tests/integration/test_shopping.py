"""A shopper's visit through the stage's public entrance (the ALB): the storefront's pages and its JSON
API, search, recommendations, a cart that every cart replica sees, checkout and confirmation."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from services.product_catalog.catalog import load_catalog
from tests.integration.stages import Stage
from tests.support.jaeger import JaegerQuery
from tests.support.shopper import Shopper, new_traceparent

CATALOG = load_catalog()
TELESCOPE = "OLJCESPC7Z"
#: concurrent reads open new connections at every hop, so they spread over the replicas behind each
#: Service (which balances connections, not requests); a bounded number of rounds
READS_PER_ROUND, ROUNDS = 4, 6


@pytest.mark.smoke
def test_the_home_page_lists_every_product_of_the_catalog(stage: Stage) -> None:
    home = httpx.get(f"{stage.shop_url}/", timeout=30)
    assert home.status_code == 200
    assert home.headers["content-type"].startswith("text/html")
    for product in CATALOG.products():
        assert f'href="/product/{product.id}"' in home.text, f"{product.name} is not on the home page"


@pytest.mark.smoke
def test_a_search_finds_the_telescopes_and_nothing_else(shopper: Shopper) -> None:
    found = shopper.http.get("/api/products", params={"q": "telescope"})
    assert found.status_code == 200
    ids = {p["id"] for p in found.json()["products"]}
    assert ids == {p.id for p in CATALOG.search("telescope")}
    assert TELESCOPE in ids
    page = shopper.http.get("/", params={"q": "telescope"})
    assert page.status_code == 200
    assert all(f'href="/product/{product_id}"' in page.text for product_id in ids)


@pytest.mark.smoke
def test_a_product_page_shows_the_product_and_five_recommendations_of_other_products(
    shopper: Shopper,
) -> None:
    page = shopper.http.get(f"/product/{TELESCOPE}")
    assert page.status_code == 200
    assert "National Park Foundation Explorascope" in page.text
    section = page.text.split('class="recommendations"', 1)[1]
    recommended = set(re.findall(r'href="/product/([A-Z0-9]+)"', section))
    assert len(recommended) == 5, recommended
    assert TELESCOPE not in recommended
    assert recommended <= {p.id for p in CATALOG.products()}


@pytest.mark.smoke
def test_an_unknown_product_is_a_404_page_and_a_bad_cart_line_a_400_naming_the_field(
    shopper: Shopper,
) -> None:
    assert shopper.http.get("/product/NOSUCHTHING").status_code == 404
    refused = shopper.add(TELESCOPE, 0)
    assert refused.status_code == 400
    assert "quantity" in refused.text


def test_a_cart_is_the_same_whichever_cart_replica_serves_it(
    stage: Stage, shopper: Shopper, telemetry: JaegerQuery
) -> None:
    assert shopper.add(TELESCOPE, 2).status_code == 200
    assert shopper.add("66VCHSJNUP").status_code == 200
    expected = {TELESCOPE: 2, "66VCHSJNUP": 1}

    def read() -> tuple[dict[str, int], str]:
        traceparent, trace_id = new_traceparent()
        response = shopper.http.get("/api/cart", headers={"traceparent": traceparent})
        response.raise_for_status()
        lines = {item["product_id"]: item["quantity"] for item in response.json()["items"]}
        [served] = telemetry.wait_for_spans(trace_id=trace_id, service="cart", kind="SERVER", timeout=30)
        return lines, str(served.resource.get("k8s.pod.name"))

    replicas: set[str] = set()
    with ThreadPoolExecutor(READS_PER_ROUND) as pool:
        for _ in range(ROUNDS):
            for lines, pod in pool.map(lambda _: read(), range(READS_PER_ROUND)):
                assert lines == expected, f"cart replica {pod} answered {lines}"
                replicas.add(pod)
            if len(replicas) >= 2:
                break
    assert len(replicas) >= 2, f"every read landed on {replicas}"


@pytest.mark.smoke
def test_a_checkout_places_the_order_empties_the_cart_and_confirms_it(shopper: Shopper) -> None:
    assert shopper.add(TELESCOPE, 2).status_code == 200
    placed = shopper.checkout()
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert [(i["product_id"], i["quantity"]) for i in order["items"]] == [(TELESCOPE, 2)]
    assert order["order_id"]
    assert order["transaction_id"]
    assert shopper.cart()["items"] == []

"""product-catalog over HTTP: listing, lookups, search, every rejection, the failure flag and start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from services.common.flag_contract import Flag
from sim.supervisor.process import free_port
from tests.support.shop import FlagsFile, Shop

FAILING_PRODUCT = "OLJCESPC7Z"
REFRACTOR = "66VCHSJNUP"
STARTUP_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def catalog(shop: Shop) -> httpx.Client:
    shop.ensure("product-catalog")
    return httpx.Client(base_url=shop.url("product-catalog"), timeout=10)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200
    return [product["id"] for product in response.json()["products"]]


def test_the_list_has_every_product_with_its_price_in_units_and_nanos(catalog: httpx.Client) -> None:
    products = catalog.get("/products").json()["products"]
    assert len(products) >= 12
    by_id = {product["id"]: product for product in products}
    assert by_id[FAILING_PRODUCT]["price"] == {"currency_code": "USD", "units": 101, "nanos": 960_000_000}
    assert by_id["HQTGWGPNH4"]["picture"] == "HQTGWGPNH4.svg"
    assert set(by_id["1YMWWN1N4O"]["categories"]) == {"telescopes", "travel"}


def test_a_product_is_found_by_id(catalog: httpx.Client) -> None:
    response = catalog.get(f"/products/{REFRACTOR}")
    assert response.status_code == 200
    product = response.json()
    assert product["name"] == "Starsense Explorer Refractor Telescope"
    assert set(product) == {"id", "name", "description", "picture", "price", "categories"}


@pytest.mark.parametrize("product_id", ["NOSUCHPROD", "66vchsjnup", "x" * 300])
def test_an_unknown_product_is_a_404_json_error(catalog: httpx.Client, product_id: str) -> None:
    response = catalog.get(f"/products/{product_id}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["status"] == 404
    assert product_id in response.json()["error"]


def test_search_ignores_case_and_looks_in_names_descriptions_and_categories(catalog: httpx.Client) -> None:
    assert ids(catalog.get("/products/search", params={"q": "comet BOOK"})) == ["HQTGWGPNH4"]
    assert "6E92ZMYYFZ" in ids(catalog.get("/products/search", params={"q": "Eclipse"}))
    assert "LS4PSXUNUM" in ids(catalog.get("/products/search", params={"q": "flashlights"}))


def test_a_search_without_matches_is_an_empty_list(catalog: httpx.Client) -> None:
    assert ids(catalog.get("/products/search", params={"q": "submarine"})) == []


@pytest.mark.parametrize(
    "params",
    [{}, {"q": ""}, {"q": "   "}, {"q": "a" * 101}, {"q": ["a", "b"]}],
    ids=["missing", "empty", "blank", "too-long", "repeated"],
)
def test_a_bad_search_query_is_a_400_naming_q(
    catalog: httpx.Client, params: dict[str, str | list[str]]
) -> None:
    response = catalog.get("/products/search", params=params)
    assert response.status_code == 400
    assert [field["field"] for field in response.json()["fields"]] == ["q"]


def test_a_query_of_the_longest_allowed_length_is_searched(catalog: httpx.Client) -> None:
    assert ids(catalog.get("/products/search", params={"q": "a" * 100})) == []


def test_product_catalog_failure_fails_that_one_product_only(
    catalog: httpx.Client, clean_flags: FlagsFile
) -> None:
    clean_flags.set(Flag.PRODUCT_CATALOG_FAILURE, True)
    failed = catalog.get(f"/products/{FAILING_PRODUCT}")
    assert failed.status_code == 503
    assert failed.json()["error"].endswith("(productCatalogFailure)")
    assert catalog.get(f"/products/{REFRACTOR}").status_code == 200
    assert FAILING_PRODUCT in ids(catalog.get("/products"))
    clean_flags.clear()
    assert catalog.get(f"/products/{FAILING_PRODUCT}").status_code == 200


def test_the_openapi_document_describes_the_catalog_api(catalog: httpx.Client) -> None:
    document = catalog.get("/openapi.json").json()
    assert {"/products", "/products/search", "/products/{product_id}"} <= set(document["paths"])
    search = document["paths"]["/products/search"]["get"]
    assert [parameter["name"] for parameter in search["parameters"]] == ["q"]
    assert {"Product", "Money"} <= set(document["components"]["schemas"])


def test_a_bad_catalog_file_stops_start_up_with_one_line(shop: Shop, tmp_path: Path) -> None:
    bad = tmp_path / "products.json"
    bad.write_text(json.dumps({"products": [{"id": "OLJCESPC7Z", "name": "no price"}]}))
    env = {**shop.env, "PORT": str(free_port()), "CATALOG_FILE": str(bad)}
    started = subprocess.run(
        [sys.executable, "-m", "services.product_catalog"],
        env=env,
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_SECONDS,
        check=False,
    )
    assert started.returncode == 2
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"product-catalog: catalog file {bad} is invalid: products.0.description")

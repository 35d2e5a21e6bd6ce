"""The catalog file shipped with product-catalog: what it holds, how it is searched, what it refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.product_catalog.catalog import DEFAULT_CATALOG_FILE, Catalog, CatalogError, load_catalog

PICTURES = Path(__file__).parents[2] / "services" / "frontend" / "static" / "products"
DEMO_PRODUCTS = {
    "OLJCESPC7Z": "National Park Foundation Explorascope",
    "66VCHSJNUP": "Starsense Explorer Refractor Telescope",
    "1YMWWN1N4O": "Eclipsmart Travel Refractor Telescope",
    "L9ECAV7KIM": "Lens Cleaning Kit",
    "2ZYFJ3GM2N": "Roof Binoculars",
    "0PUK6V6EV0": "Solar System Color Imager",
    "LS4PSXUNUM": "Red Flashlight",
    "9SIQT8TOJO": "Optical Tube Assembly",
    "6E92ZMYYFZ": "Solar Filter",
    "HQTGWGPNH4": "The Comet Book",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def shipped_products() -> list[dict[str, Any]]:
    products: list[dict[str, Any]] = json.loads(DEFAULT_CATALOG_FILE.read_text())["products"]
    return products


def write_catalog(tmp_path: Path, products: Any) -> Path:
    path = tmp_path / "products.json"
    path.write_text(json.dumps({"products": products}))
    return path


def test_the_shipped_catalog_has_the_demo_products_and_more(catalog: Catalog) -> None:
    names = {product.id: product.name for product in catalog.products()}
    assert len(names) >= 12
    assert DEMO_PRODUCTS.items() <= names.items()


def test_prices_are_whole_units_and_nanos_in_usd(catalog: Catalog) -> None:
    explorascope = catalog.get("OLJCESPC7Z")
    assert explorascope is not None
    assert explorascope.price.model_dump() == {"currency_code": "USD", "units": 101, "nanos": 960_000_000}
    for product in shipped_products():
        assert isinstance(product["price"]["units"], int)
        assert isinstance(product["price"]["nanos"], int)


def test_every_product_has_its_picture_in_the_storefront(catalog: Catalog) -> None:
    for product in catalog.products():
        picture = PICTURES / product.picture
        assert picture.name == f"{product.id}.svg"
        assert picture.read_text().startswith("<svg"), product.id
        assert picture.stat().st_size < 2048, product.id


def test_an_unknown_id_is_not_found(catalog: Catalog) -> None:
    assert catalog.get("NOSUCHPROD") is None
    assert catalog.get("oljcespc7z") is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Comet", {"HQTGWGPNH4"}),
        ("ROOF binoculars", {"2ZYFJ3GM2N"}),
        ("travel telescope", {"1YMWWN1N4O"}),
        ("  flashlights  ", {"LS4PSXUNUM"}),
    ],
    ids=["name", "any-case", "every-word", "category"],
)
def test_search_finds_products_by_name_description_or_category(
    catalog: Catalog, query: str, expected: set[str]
) -> None:
    assert {product.id for product in catalog.search(query)} == expected


def test_search_matches_descriptions_and_keeps_catalog_order(catalog: Catalog) -> None:
    found = [product.id for product in catalog.search("eclipse")]
    in_order = [product.id for product in catalog.products() if product.id in found]
    assert "6E92ZMYYFZ" in found  # "eclipse" appears only in the Solar Filter's description
    assert found == in_order


def test_search_for_a_category_finds_every_product_in_it(catalog: Catalog) -> None:
    telescopes = {product.id for product in catalog.products() if "telescopes" in product.categories}
    assert telescopes <= {product.id for product in catalog.search("telescopes")}


def test_search_with_no_match_is_empty(catalog: Catalog) -> None:
    assert catalog.search("submarine") == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p[0]["price"].update(units=101.96), "products.0.price.units"),
        (lambda p: p[0].update(picture="explorascope.jpg"), "products.0.picture"),
        (lambda p: p[1].update(id=p[0]["id"]), "the id is used twice"),
        (lambda p: p[2]["price"].update(units=0, nanos=0), "positive amount in USD"),
        (lambda p: p[2]["price"].update(currency_code="EUR"), "positive amount in USD"),
        (lambda p: p[0].update(categories=[]), "products.0.categories"),
        (lambda p: p[3].pop("name"), "products.3.name"),
        (lambda p: p[0].update(picture="0PUK6V6EV0.svg"), "picture must be OLJCESPC7Z.svg"),
    ],
    ids=[
        "float-price",
        "picture-name",
        "duplicate-id",
        "zero-price",
        "currency",
        "no-category",
        "no-name",
        "other-picture",
    ],
)
def test_a_bad_catalog_is_refused_with_one_line_naming_the_fault(
    tmp_path: Path, change: Any, reason: str
) -> None:
    products = shipped_products()
    change(products)
    with pytest.raises(CatalogError) as refused:
        load_catalog(write_catalog(tmp_path, products))
    message = str(refused.value)
    assert reason in message
    assert str(tmp_path) in message
    assert "\n" not in message


def test_an_empty_catalog_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="has no products"):
        load_catalog(write_catalog(tmp_path, []))


def test_a_catalog_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "products.json"
    path.write_text('{"products": [')
    with pytest.raises(CatalogError, match="is not JSON"):
        load_catalog(path)


def test_a_missing_catalog_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot be read"):
        load_catalog(tmp_path / "absent.json")


def test_a_catalog_with_unexpected_top_level_fields_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "products.json"
    path.write_text(json.dumps({"products": shipped_products(), "currency": "USD"}))
    with pytest.raises(CatalogError, match="currency"):
        load_catalog(path)

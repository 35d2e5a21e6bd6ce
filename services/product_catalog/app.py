"""product-catalog's HTTP API: list, get and search the catalog loaded at start-up."""

from __future__ import annotations

import logging
from pathlib import Path

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from quart import Response, abort
from quart_schema import validate_querystring, validate_response

from services.common.app import ServiceApp, error_response, flags
from services.common.config import ServiceSettings
from services.common.contracts import Product, ProductList
from services.common.flag_contract import Flag
from services.common.openapi import answers
from services.product_catalog.catalog import DEFAULT_CATALOG_FILE, load_catalog
from services.product_catalog.schemas import SearchQuery

log = logging.getLogger(__name__)

# The product that productCatalogFailure breaks, as in the OpenTelemetry Demo.
FAILING_PRODUCT_ID = "OLJCESPC7Z"


class Settings(ServiceSettings):
    catalog_file: Path = DEFAULT_CATALOG_FILE


def create_app(settings: Settings | None = None) -> ServiceApp:
    settings = settings or Settings.from_env()
    catalog = load_catalog(settings.catalog_file)
    app = ServiceApp("product-catalog", settings, title="Shopstack product catalog")
    log.info("loaded %d products from %s", len(catalog), settings.catalog_file)

    @app.get("/products")
    @validate_response(ProductList)
    async def list_products() -> ProductList:
        products = catalog.products()
        trace.get_current_span().set_attribute("app.products.count", len(products))
        return ProductList(products=products)

    @app.get("/products/search")
    @validate_querystring(SearchQuery)
    @validate_response(ProductList)
    async def search_products(query_args: SearchQuery) -> ProductList:
        found = catalog.search(query_args.q)
        trace.get_current_span().set_attributes(
            {"app.products_search.query": query_args.q, "app.products_search.count": len(found)}
        )
        return ProductList(products=found)

    @app.get("/products/<product_id>")
    @answers(404, 503)
    @validate_response(Product)
    async def get_product(product_id: str) -> Product | Response:
        span = trace.get_current_span()
        span.set_attribute("app.product.id", product_id)
        if product_id == FAILING_PRODUCT_ID and flags().enabled(Flag.PRODUCT_CATALOG_FAILURE):
            message = f"failed to get product {product_id} (productCatalogFailure)"
            span.add_event("error", {"message": message})
            span.set_status(Status(StatusCode.ERROR, message))
            return error_response(503, message)
        product = catalog.get(product_id)
        if product is None:
            abort(404, f"no product with id {product_id}")
        span.set_attribute("app.product.name", product.name)
        return product

    return app

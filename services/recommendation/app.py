"""recommendation's HTTP API: a few products from the catalog that the caller did not name."""

from __future__ import annotations

import random

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from pydantic import Field, ValidationError
from quart_schema import validate_querystring, validate_response

from services.common.app import ServiceApp, flags
from services.common.config import ServiceSettings
from services.common.contracts import Product, ProductList, RecommendationQuery
from services.common.flag_contract import Flag
from services.common.http import ServiceClient, UpstreamUnavailable
from services.common.openapi import answers
from services.recommendation.cache import DEFAULT_TTL_SECONDS, LeakingCache, ProductListCache
from services.recommendation.selection import recommend

meter = metrics.get_meter(__name__)
tracer = trace.get_tracer(__name__)


class Settings(ServiceSettings):
    product_catalog_url: str = "http://product-catalog:8080"
    catalog_cache_ttl_seconds: float = Field(default=DEFAULT_TTL_SECONDS, gt=0)


def create_app(settings: Settings | None = None) -> ServiceApp:
    settings = settings or Settings.from_env()
    app = ServiceApp("recommendation", settings, title="Shopstack recommendation")
    catalog = ServiceClient("product-catalog", settings.product_catalog_url)
    rng = random.Random()

    async def fetch_products() -> list[Product]:
        body = await catalog.get("/products")
        try:
            return ProductList.model_validate(body).products
        except ValidationError as err:
            raise UpstreamUnavailable("product-catalog", "answered a malformed product list") from err

    cache = ProductListCache(fetch_products, settings.catalog_cache_ttl_seconds)
    leak = LeakingCache(fetch_products)

    def observe_leak(options: CallbackOptions) -> list[Observation]:
        return [Observation(leak.size)]

    meter.create_observable_gauge(
        "app.recommendation.cache_size",
        callbacks=[observe_leak],
        unit="{product}",
        description="Entries in the product cache that recommendationCacheFailure makes leak",
    )

    @app.before_serving
    async def open_clients() -> None:
        await app.enter(catalog)

    async def product_list() -> list[Product]:
        """The catalog's products, from the TTL cache or, while the flag is on, the leaking one."""
        with tracer.start_as_current_span("get_product_list") as span:
            leaking = flags().enabled(Flag.RECOMMENDATION_CACHE_FAILURE)
            if leaking:
                products, hit = await leak.get()
            else:
                leak.release()
                products, hit = await cache.get()
            span.set_attributes(
                {
                    "app.recommendation.cache_leaking": leaking,
                    "app.cache_hit": hit,
                    "app.recommendation.cache_size": leak.size,
                    "app.products.count": len(products),
                }
            )
            return products

    @app.get("/recommendations")
    @answers(502, 503)
    @validate_querystring(RecommendationQuery)
    @validate_response(ProductList)
    async def recommendations(query_args: RecommendationQuery) -> ProductList:
        excluded = query_args.excluded()
        chosen = recommend(await product_list(), excluded, rng)
        trace.get_current_span().set_attributes(
            {
                "app.recommendation.excluded_count": len(excluded),
                "app.products_recommended.count": len(chosen),
                "app.products_recommended.ids": [product.id for product in chosen],
            }
        )
        return ProductList(products=chosen)

    return app

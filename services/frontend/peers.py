"""The services behind the storefront, as typed calls: products, recommendations, the cart and orders.

Every id that goes into a peer's URL is percent-encoded, so a crafted id cannot reach another path or
add a query. A peer's answer that does not fit its contract is a failure of that peer (503), never a 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TypeVar
from urllib.parse import quote

import httpx
from opentelemetry import metrics, trace
from pydantic import BaseModel, ValidationError

from services.common.contracts import AddItem, Cart, CheckoutRequest, Order, PlaceOrder, Product, ProductList
from services.common.http import ServiceClient, UpstreamRejected, UpstreamUnavailable
from services.common.idempotency import IDEMPOTENCY_HEADER

M = TypeVar("M", bound=BaseModel)

meter = metrics.get_meter(__name__)
orders_counter = meter.create_counter(
    "app.frontend.orders", description="Orders the shoppers placed, by result (placed, rejected, failed)"
)

# Checkout calls cart, catalog, payment and Kafka in turn: allow it more time than a single lookup.
CHECKOUT_TIMEOUT = httpx.Timeout(15.0, connect=2.0)


class Peers:
    """One pooled client per peer; open them with `clients()` for the life of the service."""

    def __init__(self, catalog_url: str, recommendation_url: str, cart_url: str, checkout_url: str) -> None:
        self.catalog = ServiceClient("product-catalog", catalog_url)
        self.recommendation = ServiceClient("recommendation", recommendation_url)
        self.cart_service = ServiceClient("cart", cart_url)
        self.checkout = ServiceClient("checkout", checkout_url, timeout=CHECKOUT_TIMEOUT)

    def clients(self) -> tuple[ServiceClient, ...]:
        return self.catalog, self.recommendation, self.cart_service, self.checkout

    async def products(self, query: str | None = None) -> list[Product]:
        """The whole catalog, or the products matching `query`."""
        if query:
            body = await self.catalog.get("/products/search", params={"q": query})
        else:
            body = await self.catalog.get("/products")
        return _parse(self.catalog, ProductList, body).products

    async def product(self, product_id: str) -> Product:
        body = await self.catalog.get(f"/products/{_segment(product_id)}")
        return _parse(self.catalog, Product, body)

    async def products_by_id(self, product_ids: Iterable[str]) -> dict[str, Product]:
        ids = list(dict.fromkeys(product_ids))
        found = await asyncio.gather(*(self.product(product_id) for product_id in ids))
        return dict(zip(ids, found, strict=True))

    async def recommendations(self, product_ids: Iterable[str]) -> list[Product]:
        """Up to five products other than `product_ids`."""
        params = {"product_ids": ",".join(product_ids)}
        body = await self.recommendation.get("/recommendations", params=params)
        return _parse(self.recommendation, ProductList, body).products

    async def cart(self, user_id: str) -> Cart:
        body = await self.cart_service.get(f"/carts/{_segment(user_id)}")
        return _parse(self.cart_service, Cart, body)

    async def add_to_cart(self, user_id: str, item: AddItem) -> Cart:
        body = await self.cart_service.post(f"/carts/{_segment(user_id)}/items", json=item.model_dump())
        return _parse(self.cart_service, Cart, body)

    async def empty_cart(self, user_id: str) -> None:
        await self.cart_service.delete(f"/carts/{_segment(user_id)}")

    async def place_order(self, user_id: str, order: PlaceOrder, idempotency_key: str) -> Order:
        """Check out the user's cart; `idempotency_key` names the attempt, so that checkout places it once
        however often it is sent (the client sends it again on a connection that closed under it)."""
        request = CheckoutRequest(user_id=user_id, **order.model_dump())
        try:
            body = await self.checkout.post(
                "/checkout",
                json=request.model_dump(mode="json"),
                headers={IDEMPOTENCY_HEADER: idempotency_key},
            )
            placed = _parse(self.checkout, Order, body)
        except UpstreamRejected:
            orders_counter.add(1, {"result": "rejected"})
            raise
        except UpstreamUnavailable:
            orders_counter.add(1, {"result": "failed"})
            raise
        orders_counter.add(1, {"result": "placed"})
        trace.get_current_span().set_attributes(
            {"app.order.id": placed.order_id, "app.order.items.count": len(placed.items)}
        )
        return placed


def _segment(value: str) -> str:
    return quote(value, safe="")


def _parse(client: ServiceClient, model: type[M], body: object) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as err:
        raise UpstreamUnavailable(client.service, f"answered an unexpected {model.__name__}") from err

"""The JSON API under /api/: what the pages show, as JSON for scripts and the browser.

The shopper is the session (cookie `session_id`), never a user id in the request. A peer's 4xx passes
through with its status, message and fields (an unknown product is a 404, a refused card a 400 naming
the card field); a peer that is down is a 503 (the app's handler).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from quart import Blueprint, Response
from quart_schema import validate_headers, validate_querystring, validate_request, validate_response

from services.common.app import ServiceApp, error_response
from services.common.contracts import (
    AddItem,
    Cart,
    Order,
    PlaceOrder,
    Product,
    ProductList,
    RecommendationQuery,
)
from services.common.http import UpstreamRejected
from services.common.idempotency import IdempotencyHeaders, new_key
from services.common.openapi import answers, no_content
from services.frontend.peers import Peers
from services.frontend.schemas import ProductQuery
from services.frontend.session import session_id, set_session_cookie, start_session


def peer_error(error: UpstreamRejected) -> Response:
    """The peer's own 4xx answer, as the frontend's JSON error."""
    body: dict[str, Any] = error.body if isinstance(error.body, dict) else {}
    fields = body.get("fields")
    message = body.get("error")
    return error_response(
        error.status,
        message if isinstance(message, str) else str(error),
        fields if isinstance(fields, list) else None,
    )


def register_api(app: ServiceApp, peers: Peers) -> None:
    api = Blueprint("api", __name__, url_prefix="/api")
    api.before_request(start_session)
    api.after_request(set_session_cookie)
    api.register_error_handler(UpstreamRejected, peer_error)

    @api.get("/products")
    @answers(502, 503)
    @validate_querystring(ProductQuery)
    @validate_response(ProductList)
    async def list_products(query_args: ProductQuery) -> ProductList:
        return ProductList(products=await peers.products(query_args.q))

    @api.get("/products/<product_id>")
    @answers(404, 502, 503)
    @validate_response(Product)
    async def get_product(product_id: str) -> Product:
        trace.get_current_span().set_attribute("app.product.id", product_id)
        return await peers.product(product_id)

    @api.get("/recommendations")
    @answers(502, 503)
    @validate_querystring(RecommendationQuery)
    @validate_response(ProductList)
    async def recommendations(query_args: RecommendationQuery) -> ProductList:
        return ProductList(products=await peers.recommendations(sorted(query_args.excluded())))

    @api.get("/cart")
    @answers(502, 503)
    @validate_response(Cart)
    async def get_cart() -> Cart:
        return await peers.cart(session_id())

    @api.post("/cart")
    @answers(404, 502, 503)
    @validate_request(AddItem)
    @validate_response(Cart)
    async def add_to_cart(data: AddItem) -> Cart:
        trace.get_current_span().set_attributes(
            {"app.product.id": data.product_id, "app.product.quantity": data.quantity}
        )
        await peers.product(data.product_id)
        return await peers.add_to_cart(session_id(), data)

    @api.delete("/cart")
    @no_content
    @answers(502, 503)
    async def empty_cart() -> tuple[str, int]:
        await peers.empty_cart(session_id())
        return "", 204

    @api.post("/checkout")
    @answers(502, 503)
    @validate_request(PlaceOrder)
    @validate_headers(IdempotencyHeaders)
    @validate_response(Order, 201)
    async def checkout(data: PlaceOrder, headers: IdempotencyHeaders) -> tuple[Order, int]:
        """Place the order; a retry with the same `Idempotency-Key` (and body) places it once."""
        order = await peers.place_order(session_id(), data, headers.idempotency_key or new_key())
        return order, 201

    app.register_blueprint(api)

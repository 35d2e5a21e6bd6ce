"""The storefront's HTML pages: home (with search), product, cart with the checkout form, and the order
confirmation. Forms post back to the server; nothing needs JavaScript.

A peer that is down shows a friendly 503 page and an unknown product a 404 page. A checkout form the
shop cannot accept (a malformed field, a refused card, an empty cart) shows the cart again with the
problems beside the fields and the shopper's entries kept. Each rendering of the checkout form carries a
new idempotency key: the same form sent twice (a double click, a reload) places one order.
"""

from __future__ import annotations

import logging
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce
from typing import Any

from opentelemetry import trace
from pydantic import ValidationError
from quart import Blueprint, redirect, render_template, request
from quart_schema import hide
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.wrappers.response import Response as Redirect

from services.common.app import ServiceApp, field_errors
from services.common.contracts import MAX_QUANTITY_PER_ADD, AddItem, Cart, Order, PlaceOrder, Product
from services.common.http import UpstreamRejected, UpstreamUnavailable
from services.common.idempotency import KEY_PATTERN, new_key
from services.common.money import Money
from services.frontend.formatting import format_money
from services.frontend.peers import Peers
from services.frontend.session import session_id, set_session_cookie, start_session

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

MAX_QUERY_LENGTH = 100
QUANTITY_CHOICES = range(1, 11)
CARD_YEARS_AHEAD = 15

# The OpenTelemetry Demo's checkout form values: a test VISA card that payment accepts.
DEMO_ORDER_FORM = {
    "email": "someone@example.com",
    "address.street_address": "1600 Amphitheatre Parkway",
    "address.zip_code": "94043",
    "address.city": "Mountain View",
    "address.state": "CA",
    "address.country": "United States",
    "credit_card.number": "4432-8015-6152-0454",
    "credit_card.expiration_month": "1",
    "credit_card.expiration_year": "2030",
    "credit_card.cvv": "672",
}


@dataclass(frozen=True)
class CartLine:
    product: Product
    quantity: int

    @property
    def total(self) -> Money:
        return self.product.price.times(self.quantity)


def subtotal(lines: list[CartLine]) -> Money | None:
    """The lines' sum, or None for an empty cart."""
    totals = [line.total for line in lines]
    return reduce(operator.add, totals) if totals else None


def order_form_body(form: Mapping[str, str]) -> dict[str, Any]:
    """The flat form fields (`address.city`) as the nested order body; card numbers lose spaces and dashes."""
    body: dict[str, Any] = {}
    for name in DEMO_ORDER_FORM:
        value = form.get(name, "").strip()
        if name == "credit_card.number":
            value = value.replace(" ", "").replace("-", "")
        *parents, leaf = name.split(".")
        target = body
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return body


def attempt_key(form: Mapping[str, str]) -> str:
    """The checkout form's key, issued with the form so that sending the same form again (a double click,
    a reload) places one order; a new key when the form has none (or a malformed one)."""
    key = form.get("idempotency_key", "")
    return key if re.fullmatch(KEY_PATTERN, key) else new_key()


def rejection_errors(error: UpstreamRejected) -> tuple[str, dict[str, str]]:
    """A peer's 4xx as a message for the page and messages by form field."""
    body = error.body if isinstance(error.body, dict) else {}
    fields = {
        str(entry.get("field")): str(entry.get("message"))
        for entry in body.get("fields") or []
        if isinstance(entry, dict)
    }
    message = body.get("error")
    if error.status == 400 and "user_id" in fields:
        return "Your cart is empty: add a product before checking out.", {}
    return message if isinstance(message, str) else str(error), fields


def register_pages(app: ServiceApp, peers: Peers) -> None:
    pages = Blueprint("pages", __name__)
    pages.before_request(start_session)
    pages.after_request(set_session_cookie)
    app.add_template_filter(format_money, "money")

    @pages.context_processor
    async def session_in_footer() -> dict[str, Any]:
        return {"session_id": session_id()}

    @pages.errorhandler(UpstreamUnavailable)
    async def peer_unavailable(error: UpstreamUnavailable) -> tuple[str, int]:
        log.warning("page %s failed: %s", request.path, error)
        detail = f"The {error.service} service is not answering."
        return await error_page(503, "Part of the shop is not available right now", detail)

    @pages.errorhandler(UpstreamRejected)
    async def peer_rejected(error: UpstreamRejected) -> tuple[str, int]:
        message, _ = rejection_errors(error)
        if error.status == 404:
            return await error_page(404, "We could not find that", message)
        return await error_page(error.status, "The shop could not do that", message)

    @pages.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> tuple[str, int]:
        return await error_page(error.code or 500, error.name, error.description or "")

    @pages.get("/")
    @hide
    async def home() -> str:
        query = request.args.get("q", "").strip()
        if len(query) > MAX_QUERY_LENGTH:
            raise BadRequest(f"A search can be at most {MAX_QUERY_LENGTH} characters long.")
        products = await peers.products(query or None)
        trace.get_current_span().set_attribute("app.products.count", len(products))
        return await render_template("home.html", products=products, query=query)

    @pages.get("/product/<product_id>")
    @hide
    async def product_page(product_id: str) -> str:
        trace.get_current_span().set_attribute("app.product.id", product_id)
        product = await peers.product(product_id)
        return await render_template(
            "product.html",
            product=product,
            recommendations=await recommendations_for(product.id),
            quantities=QUANTITY_CHOICES,
        )

    @pages.get("/cart")
    @hide
    async def cart_page() -> str:
        return await render_cart(DEMO_ORDER_FORM)

    @pages.post("/cart")
    @hide
    async def add_to_cart() -> Redirect:
        form = await request.form
        try:
            item = AddItem.model_validate(
                {"product_id": form.get("product_id", ""), "quantity": form.get("quantity", "")}, strict=False
            )
        except ValidationError as err:
            raise BadRequest(
                f"Choose a product and a quantity from 1 to {MAX_QUANTITY_PER_ADD}. "
                f"({', '.join(f['field'] for f in field_errors(err))})"
            ) from None
        trace.get_current_span().set_attributes(
            {"app.product.id": item.product_id, "app.product.quantity": item.quantity}
        )
        await peers.product(item.product_id)
        await peers.add_to_cart(session_id(), item)
        return redirect("/cart", 303)

    @pages.post("/cart/empty")
    @hide
    async def empty_cart() -> Redirect:
        await peers.empty_cart(session_id())
        return redirect("/cart", 303)

    @pages.post("/checkout")
    @hide
    async def checkout() -> str | tuple[str, int]:
        form = await request.form
        entered = {name: form.get(name, "") for name in DEMO_ORDER_FORM}
        try:
            order_form = PlaceOrder.model_validate(order_form_body(form), strict=False)
        except ValidationError as err:
            fields = {f["field"]: f["message"] for f in field_errors(err)}
            return await render_cart(entered, ["Please check the highlighted fields."], fields), 400
        try:
            order = await peers.place_order(session_id(), order_form, attempt_key(form))
        except UpstreamRejected as err:
            message, fields = rejection_errors(err)
            return await render_cart(entered, [message], fields), err.status
        return await render_template("order.html", order=order, products=await products_in_order(order))

    async def render_cart(
        form: Mapping[str, str], messages: list[str] | None = None, errors: Mapping[str, str] | None = None
    ) -> str:
        cart = await peers.cart(session_id())
        lines = await priced_lines(cart)
        this_year = datetime.now(UTC).year
        return await render_template(
            "cart.html",
            lines=lines,
            subtotal=subtotal(lines),
            form=form,
            messages=messages or [],
            errors=errors or {},
            months=range(1, 13),
            years=range(this_year, this_year + CARD_YEARS_AHEAD + 1),
            idempotency_key=new_key(),
        )

    async def priced_lines(cart: Cart) -> list[CartLine]:
        with tracer.start_as_current_span("price cart") as span:
            products = await peers.products_by_id(line.product_id for line in cart.items)
            span.set_attributes(
                {"app.cart.items.count": len(cart.items), "app.cart.products.count": len(products)}
            )
            return [CartLine(products[line.product_id], line.quantity) for line in cart.items]

    async def recommendations_for(product_id: str) -> list[Product]:
        """Five other products; without them when recommendation fails (the page still sells)."""
        try:
            return await peers.recommendations([product_id])
        except (UpstreamUnavailable, UpstreamRejected) as err:
            trace.get_current_span().record_exception(err)
            log.warning("showing product %s without recommendations: %s", product_id, err)
            return []

    async def products_in_order(order: Order) -> dict[str, Product]:
        """The ordered products for names and pictures; the order is placed, so a failed lookup shows ids."""
        try:
            return await peers.products_by_id(item.product_id for item in order.items)
        except (UpstreamUnavailable, UpstreamRejected) as err:
            trace.get_current_span().record_exception(err)
            log.warning("order %s confirmed without product details: %s", order.order_id, err)
            return {}

    app.register_blueprint(pages)


async def error_page(status: int, title: str, detail: str) -> tuple[str, int]:
    return await render_template("error.html", status=status, title=title, detail=detail), status

"""The order flow: cart -> prices -> shipping -> charge -> publish `OrderPlaced` -> empty the cart.

Every failure leaves the shop consistent:
- nothing is charged until the cart is read and priced;
- the charge's idempotency key is the order id (derived from the checkout's `Idempotency-Key` when it has
  one), so retrying the charge, or the whole checkout, never charges twice;
- a refused or failed charge places no order: nothing is published and the cart is kept;
- an order that cannot be published is not placed: its charge is voided and the cart is kept;
- an order that is paid and published is placed, even when its cart cannot be emptied afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from aiokafka.errors import KafkaError
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from services.checkout.shipping import shipping_cost
from services.common.contracts import (
    Cart,
    ChargeRequest,
    ChargeResponse,
    CheckoutRequest,
    CreditCard,
    Product,
)
from services.common.http import ServiceClient, UpstreamRejected, UpstreamUnavailable
from services.common.kafka import Publisher
from services.common.money import Money
from services.common.orders import ORDERS_TOPIC, OrderItem, OrderPlaced, encode, schema_header

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

M = TypeVar("M", bound=BaseModel)

VOID_ATTEMPTS = 3
VOID_RETRY_DELAY_SECONDS = 0.2
MAX_EXTRA_COPIES = 100


class EmptyCart(Exception):
    """The user's cart has no items: there is nothing to order."""


class UnknownProduct(Exception):
    """The cart holds a product the catalog does not know."""

    def __init__(self, product_id: str) -> None:
        super().__init__(f"the cart holds product {product_id}, which is not in the catalog")
        self.product_id = product_id


class PaymentRefused(Exception):
    """payment refused the card; `fields` name what is wrong with it."""

    def __init__(self, message: str, fields: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.fields = fields


class OrderNotPublished(Exception):
    """The order was charged but could not be published, so it is not placed."""

    def __init__(self, order_id: str, transaction_id: str, voided: bool, reason: str) -> None:
        outcome = "was voided" if voided else "could NOT be voided"
        super().__init__(
            f"order {order_id} was not placed: publishing it failed ({reason}); "
            f"its charge {transaction_id} {outcome}"
        )
        self.voided = voided


def extra_copies(flag_value: float) -> int:
    """The duplicates `kafkaQueueProblems` asks for, between 0 and `MAX_EXTRA_COPIES`."""
    return max(0, min(int(flag_value), MAX_EXTRA_COPIES))


class OrderFlow:
    """Places orders using cart, product-catalog, payment and the `orders` topic."""

    def __init__(self, cart: ServiceClient, catalog: ServiceClient, publisher: Publisher) -> None:
        self._cart = cart
        self._catalog = catalog
        self._publisher = publisher

    async def place(
        self, order_id: str, request: CheckoutRequest, payment: ServiceClient, copies: int = 0
    ) -> OrderPlaced:
        """Place order `order_id` for the user's cart, charging through `payment`; publish `copies`
        duplicates."""
        span = trace.get_current_span()
        span.set_attributes({"app.order.id": order_id, "app.user.id": request.user_id})

        items = await self._priced_cart(request.user_id)
        subtotal = sum((item.unit_price.times(item.quantity) for item in items), Money.zero())
        shipping = shipping_cost(subtotal, sum(item.quantity for item in items))
        total = subtotal + shipping
        span.set_attributes(
            {
                "app.order.amount": float(total.to_decimal()),
                "app.order.items.count": len(items),
                "app.shipping.amount": float(shipping.to_decimal()),
            }
        )

        transaction_id = await self._charge(payment, order_id, total, request.credit_card)
        span.set_attribute("app.payment.transaction.id", transaction_id)
        order = OrderPlaced(
            order_id=order_id,
            user_id=request.user_id,
            email=request.email,
            items=items,
            shipping_address=request.address,
            shipping_cost=shipping,
            total=total,
            transaction_id=transaction_id,
            placed_at=datetime.now(UTC),
        )
        await self._publish(order, payment, copies)
        await self._empty_cart(request.user_id)
        return order

    async def _priced_cart(self, user_id: str) -> list[OrderItem]:
        with tracer.start_as_current_span("prepare order items"):
            cart = _read(Cart, await self._cart.get(f"/carts/{quote(user_id, safe='')}"), "cart")
            if not cart.items:
                raise EmptyCart(f"the cart of {user_id} is empty")
            prices = await asyncio.gather(*(self._price(line.product_id) for line in cart.items))
        return [
            OrderItem(product_id=line.product_id, quantity=line.quantity, unit_price=price)
            for line, price in zip(cart.items, prices, strict=True)
        ]

    async def _price(self, product_id: str) -> Money:
        try:
            product = await self._catalog.get(f"/products/{quote(product_id, safe='')}")
        except UpstreamRejected as err:
            if err.status == 404:
                raise UnknownProduct(product_id) from None
            raise
        return _read(Product, product, "product-catalog").price

    async def _charge(self, payment: ServiceClient, order_id: str, total: Money, card: CreditCard) -> str:
        """Charge `total`, keyed by the order id; retry once when the reply (not the request) was lost."""
        body = ChargeRequest(idempotency_key=order_id, amount=total, credit_card=card).model_dump()
        try:
            return await self._post_charge(payment, body)
        except UpstreamUnavailable as err:
            if not _maybe_charged(err):
                raise
            log.warning(
                "charging order %s may have succeeded (%s); asking again with the same key", order_id, err
            )
            return await self._post_charge(payment, body)

    @staticmethod
    async def _post_charge(payment: ServiceClient, body: dict[str, Any]) -> str:
        try:
            answer = await payment.post("/charges", json=body)
        except UpstreamRejected as err:
            if err.status != 400:
                raise
            details = err.body if isinstance(err.body, dict) else {}
            raise PaymentRefused(
                str(details.get("error", "the card was refused")), list(details.get("fields") or [])
            ) from None
        return _read(ChargeResponse, answer, "payment").transaction_id

    async def _publish(self, order: OrderPlaced, payment: ServiceClient, copies: int) -> None:
        """Publish the order (and `copies` duplicates); if that fails, void its charge."""
        value, headers = encode(order), [schema_header()]
        try:
            await self._publisher.publish(ORDERS_TOPIC, order.order_id, value, headers)
        except KafkaError as err:
            reason = str(err) or type(err).__name__
            log.error("order %s could not be published: %s; voiding its charge", order.order_id, reason)
            trace.get_current_span().record_exception(err)
            voided = await self._void(payment, order.transaction_id)
            raise OrderNotPublished(order.order_id, order.transaction_id, voided, reason) from err
        if copies:
            await self._publish_copies(order.order_id, value, headers, copies)

    async def _publish_copies(
        self, order_id: str, value: bytes, headers: list[tuple[str, bytes]], copies: int
    ) -> None:
        """`kafkaQueueProblems`: the same order again, `copies` times; a lost copy does not fail the order."""
        results = await asyncio.gather(
            *(self._publisher.publish(ORDERS_TOPIC, order_id, value, headers) for _ in range(copies)),
            return_exceptions=True,
        )
        failed = sum(isinstance(result, BaseException) for result in results)
        trace.get_current_span().set_attributes(
            {"app.kafka.extra_copies": copies, "app.kafka.extra_copies.failed": failed}
        )

    async def _void(self, payment: ServiceClient, transaction_id: str) -> bool:
        for attempt in range(1, VOID_ATTEMPTS + 1):
            try:
                await payment.post(f"/charges/{quote(transaction_id, safe='')}/void")
            except UpstreamRejected as err:
                log.error("charge %s could not be voided: %s", transaction_id, err)
                return False
            except UpstreamUnavailable as err:
                log.warning("voiding charge %s failed (attempt %d): %s", transaction_id, attempt, err)
                if attempt < VOID_ATTEMPTS:
                    await asyncio.sleep(VOID_RETRY_DELAY_SECONDS)
            else:
                return True
        log.error("charge %s could not be voided: refund it by hand", transaction_id)
        return False

    async def _empty_cart(self, user_id: str) -> None:
        """Empty the cart of a placed order; a failure is recorded, not raised: the order stands."""
        span = trace.get_current_span()
        try:
            await self._cart.delete(f"/carts/{quote(user_id, safe='')}")
        except (UpstreamUnavailable, UpstreamRejected) as err:
            log.warning("the order is placed but the cart of %s could not be emptied: %s", user_id, err)
            span.record_exception(err)
            span.set_attribute("app.cart.emptied", False)
        else:
            span.set_attribute("app.cart.emptied", True)


def _maybe_charged(err: UpstreamUnavailable) -> bool:
    """Whether the charge request may have reached payment although no answer came back."""
    cause = err.__cause__
    return isinstance(cause, httpx.TransportError) and not isinstance(
        cause, httpx.ConnectError | httpx.ConnectTimeout
    )


def _read(model: type[M], body: Any, service: str) -> M:
    """A peer's answer as `model`; an answer of another shape means the peer is broken."""
    try:
        return model.model_validate(body)
    except ValidationError as err:
        raise UpstreamUnavailable(
            service, f"answered an unexpected body ({err.error_count()} errors)"
        ) from err

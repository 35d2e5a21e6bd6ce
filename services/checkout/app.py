"""checkout's HTTP API: POST /checkout places the order for a user's cart.

A checkout that carries an `Idempotency-Key` may be sent again: it places its order once and every retry
gets the first attempt's answer (see `services.checkout.idempotency`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from opentelemetry import metrics, trace
from pydantic import Field
from quart import Response
from quart_schema import validate_headers, validate_request, validate_response

from services.checkout.idempotency import (
    CheckoutLog,
    KeyReused,
    Outcome,
    StillRunning,
    checkout_key,
    fingerprint,
    order_id_for,
)
from services.checkout.order import (
    EmptyCart,
    OrderFlow,
    OrderNotPublished,
    PaymentRefused,
    UnknownProduct,
    extra_copies,
)
from services.common.app import ServiceApp, error_response, flags
from services.common.aws import DynamoDBUnavailable, dynamodb_resource
from services.common.config import ServiceSettings
from services.common.contracts import CheckoutRequest, Order
from services.common.flag_contract import Flag
from services.common.http import ServiceClient, UpstreamRejected, UpstreamUnavailable
from services.common.idempotency import IDEMPOTENCY_HEADER, IdempotencyHeaders
from services.common.kafka import Publisher
from services.common.openapi import ErrorBody, answers

log = logging.getLogger(__name__)
meter = metrics.get_meter(__name__)
orders_counter = meter.create_counter("app.checkout.orders", description="Checkouts by result")

# Where payment is called while `paymentUnreachable` is on: nothing listens on port 1 of loopback.
UNREACHABLE_PAYMENT_URL = "http://127.0.0.1:1"
#: set on the answer to a retry: it is the stored answer of the first attempt
REPLAYED_HEADER = "Idempotent-Replayed"
DAY_SECONDS = 24 * 3600.0


class Settings(ServiceSettings):
    cart_url: str = "http://cart:8080"
    product_catalog_url: str = "http://product-catalog:8080"
    payment_url: str = "http://payment:8080"
    kafka_bootstrap_servers: str = "kafka:9092"
    checkouts_table: str = Field(min_length=3, max_length=255)
    #: how long a checkout's key and answer are remembered (the table's TTL attribute)
    checkout_key_ttl_seconds: float = Field(default=DAY_SECONDS, gt=0)
    #: how long a running attempt holds its key: past it, the attempt is taken for dead and a retry runs
    checkout_lease_seconds: float = Field(default=60.0, gt=0)
    #: how long a retry waits for the attempt still running under its key before it answers 409
    checkout_retry_wait_seconds: float = Field(default=10.0, ge=0)


@dataclass(frozen=True)
class Connections:
    """What checkout talks to, opened before serving."""

    cart: ServiceClient
    catalog: ServiceClient
    payment: ServiceClient
    unreachable_payment: ServiceClient
    publisher: Publisher
    flow: OrderFlow


def create_app(settings: Settings | None = None) -> ServiceApp:
    settings = settings or Settings.from_env()
    app = ServiceApp("checkout", settings, title="Shopstack checkout")
    opened: list[Connections] = []
    checkouts = CheckoutLog(
        settings.checkouts_table,
        ttl_seconds=settings.checkout_key_ttl_seconds,
        lease_seconds=settings.checkout_lease_seconds,
        wait_seconds=settings.checkout_retry_wait_seconds,
    )

    def connections() -> Connections:
        return opened[0]

    @app.before_serving
    async def connect() -> None:
        cart = await app.enter(ServiceClient("cart", settings.cart_url))
        catalog = await app.enter(ServiceClient("product-catalog", settings.product_catalog_url))
        payment = await app.enter(ServiceClient("payment", settings.payment_url))
        unreachable = await app.enter(ServiceClient("payment", UNREACHABLE_PAYMENT_URL))
        await checkouts.use(await app.enter(dynamodb_resource()))
        publisher = await app.enter(Publisher(settings.kafka_bootstrap_servers, client_id="checkout"))
        flow = OrderFlow(cart, catalog, publisher)
        opened.append(Connections(cart, catalog, payment, unreachable, publisher, flow))

    @app.readiness_check("dynamodb")
    async def table_reachable() -> None:
        await checkouts.check()

    @app.readiness_check("kafka")
    async def kafka_reachable() -> None:
        await connections().publisher.ping()

    @app.post("/checkout")
    @validate_request(CheckoutRequest)
    @validate_headers(IdempotencyHeaders)
    @validate_response(Order, 201)
    @answers(409, 422, 502, 503)
    async def checkout(data: CheckoutRequest, headers: IdempotencyHeaders) -> Response | Answer:
        if headers.idempotency_key is None:
            return answer(await attempt(data, str(uuid4())))
        key = checkout_key(data.user_id, headers.idempotency_key)
        try:
            claimed = await checkouts.claim(key, fingerprint(data.model_dump_json()))
        except KeyReused:
            message = f"this {IDEMPOTENCY_HEADER} was used for a different checkout"
            return error_response(422, message, [{"field": "idempotency_key", "message": message}])
        except StillRunning:
            busy = error_response(409, f"a checkout with this {IDEMPOTENCY_HEADER} is still in progress")
            busy.headers["Retry-After"] = "1"
            return busy
        if isinstance(claimed, Outcome):
            trace.get_current_span().set_attribute("app.checkout.replayed", True)
            return answer(claimed, {REPLAYED_HEADER: "true"})
        try:
            outcome = await attempt(data, order_id_for(key))
        except (UpstreamUnavailable, UpstreamRejected):
            await checkouts.release(claimed)  # nothing was published: a retry runs it again
            raise
        try:
            await checkouts.finish(claimed, outcome)
        except DynamoDBUnavailable as err:  # the order stands: answer it, store the answer when DynamoDB can
            log.warning("checkout %s answered %d before its answer was stored: %s", key, outcome.status, err)
            app.add_background_task(checkouts.finish_later, claimed, outcome)
        return answer(outcome)

    async def attempt(data: CheckoutRequest, order_id: str) -> Outcome:
        """Place order `order_id`; the answer, unless a peer failed before anything was published."""
        current = connections()
        unreachable = flags().enabled(Flag.PAYMENT_UNREACHABLE)
        payment = current.unreachable_payment if unreachable else current.payment
        copies = extra_copies(flags().number(Flag.KAFKA_QUEUE_PROBLEMS))
        try:
            order = await current.flow.place(order_id, data, payment, copies)
        except (EmptyCart, UnknownProduct) as err:
            orders_counter.add(1, {"result": "invalid_cart"})
            return failure(400, str(err), [{"field": "user_id", "message": str(err)}])
        except PaymentRefused as err:
            orders_counter.add(1, {"result": "payment_refused"})
            return failure(400, f"payment refused: {err}", err.fields)
        except OrderNotPublished as err:
            orders_counter.add(1, {"result": "not_published"})
            return failure(503, str(err))
        except (UpstreamUnavailable, UpstreamRejected) as err:
            orders_counter.add(1, {"result": f"{err.service}_failed"})
            raise
        orders_counter.add(1, {"result": "placed"})
        placed = Order.model_validate(order, from_attributes=True)
        return Outcome(201, placed.model_dump(mode="json"))

    return app


Answer = tuple[dict[str, Any], int, dict[str, str]]


def answer(outcome: Outcome, headers: dict[str, str] | None = None) -> Answer:
    return outcome.body, outcome.status, headers or {}


def failure(status: int, message: str, fields: list[dict[str, str]] | None = None) -> Outcome:
    return Outcome(
        status, ErrorBody(error=message, status=status, fields=fields).model_dump(exclude_none=True)
    )

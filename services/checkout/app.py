"""checkout's HTTP API: POST /checkout places the order for a user's cart."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import metrics
from quart_schema import validate_request, validate_response

from services.checkout.order import (
    EmptyCart,
    OrderFlow,
    OrderNotPublished,
    PaymentRefused,
    UnknownProduct,
    extra_copies,
)
from services.common.app import ServiceApp, error_response, flags
from services.common.config import ServiceSettings
from services.common.contracts import CheckoutRequest, Order
from services.common.flag_contract import Flag
from services.common.http import ServiceClient, UpstreamRejected, UpstreamUnavailable
from services.common.kafka import Publisher

meter = metrics.get_meter(__name__)
orders_counter = meter.create_counter("app.checkout.orders", description="Checkouts by result")

# Where payment is called while `paymentUnreachable` is on: nothing listens on port 1 of loopback.
UNREACHABLE_PAYMENT_URL = "http://127.0.0.1:1"


class Settings(ServiceSettings):
    cart_url: str = "http://cart:8080"
    product_catalog_url: str = "http://product-catalog:8080"
    payment_url: str = "http://payment:8080"
    kafka_bootstrap_servers: str = "kafka:9092"


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

    def connections() -> Connections:
        return opened[0]

    @app.before_serving
    async def connect() -> None:
        cart = await app.enter(ServiceClient("cart", settings.cart_url))
        catalog = await app.enter(ServiceClient("product-catalog", settings.product_catalog_url))
        payment = await app.enter(ServiceClient("payment", settings.payment_url))
        unreachable = await app.enter(ServiceClient("payment", UNREACHABLE_PAYMENT_URL))
        publisher = await app.enter(Publisher(settings.kafka_bootstrap_servers, client_id="checkout"))
        flow = OrderFlow(cart, catalog, publisher)
        opened.append(Connections(cart, catalog, payment, unreachable, publisher, flow))

    @app.readiness_check("cart")
    async def cart_alive() -> None:
        await connections().cart.ping()

    @app.readiness_check("product-catalog")
    async def catalog_alive() -> None:
        await connections().catalog.ping()

    @app.readiness_check("payment")
    async def payment_alive() -> None:
        await connections().payment.ping()

    @app.readiness_check("kafka")
    async def kafka_reachable() -> None:
        await connections().publisher.ping()

    @app.post("/checkout")
    @validate_request(CheckoutRequest)
    @validate_response(Order, 201)
    async def checkout(data: CheckoutRequest):  # type: ignore[no-untyped-def]
        current = connections()
        unreachable = flags().enabled(Flag.PAYMENT_UNREACHABLE)
        payment = current.unreachable_payment if unreachable else current.payment
        copies = extra_copies(flags().number(Flag.KAFKA_QUEUE_PROBLEMS))
        try:
            order = await current.flow.place(data, payment, copies)
        except (EmptyCart, UnknownProduct) as err:
            orders_counter.add(1, {"result": "invalid_cart"})
            return error_response(400, str(err), [{"field": "user_id", "message": str(err)}])
        except PaymentRefused as err:
            orders_counter.add(1, {"result": "payment_refused"})
            return error_response(400, f"payment refused: {err}", err.fields)
        except OrderNotPublished as err:
            orders_counter.add(1, {"result": "not_published"})
            return error_response(503, str(err))
        except (UpstreamUnavailable, UpstreamRejected) as err:
            orders_counter.add(1, {"result": f"{err.service}_failed"})
            raise
        orders_counter.add(1, {"result": "placed"})
        return Order.model_validate(order, from_attributes=True), 201

    return app

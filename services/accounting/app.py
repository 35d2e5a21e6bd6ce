"""accounting's consumer and HTTP API: every `OrderPlaced` written once to the orders table; read one back."""

from __future__ import annotations

import logging

from aiokafka import ConsumerRecord
from botocore.exceptions import BotoCoreError, ClientError
from opentelemetry import metrics, trace
from quart import Response, abort
from quart_schema import validate_response

from services.accounting.ledger import OrdersLedger
from services.accounting.schemas import RecordedOrder
from services.common.app import ServiceApp, error_response
from services.common.aws import dynamodb_resource
from services.common.config import ServiceSettings
from services.common.kafka import Worker
from services.common.openapi import answers
from services.common.orders import ORDERS_TOPIC, decode

CONSUMER_GROUP = "accounting"

log = logging.getLogger(__name__)

meter = metrics.get_meter(__name__)
orders_counter = meter.create_counter(
    "app.accounting.orders", description="Orders consumed, by result: written or duplicate"
)


class Settings(ServiceSettings):
    kafka_bootstrap_servers: str = "kafka:9092"
    orders_table: str = "shopstack-orders"


def create_app(settings: Settings | None = None) -> ServiceApp:
    settings = settings or Settings.from_env()
    app = ServiceApp("accounting", settings, title="Shopstack accounting")
    ledger: OrdersLedger | None = None
    worker: Worker | None = None

    async def record(message: ConsumerRecord) -> None:
        assert ledger is not None
        order = decode(message.value)
        span = trace.get_current_span()
        span.set_attribute("app.order.id", order.order_id)
        result = "written" if await ledger.record(order) else "duplicate"
        span.set_attribute("app.accounting.result", result)
        orders_counter.add(1, {"result": result})
        log.info("order %s %s", order.order_id, result)

    @app.before_serving
    async def start() -> None:
        nonlocal ledger, worker
        dynamodb = await app.enter(dynamodb_resource())
        ledger = OrdersLedger(await dynamodb.Table(settings.orders_table))
        # Entered last, so closed first: the message in hand is finished and committed while the table
        # client is still open.
        worker = await app.enter(
            Worker(settings.kafka_bootstrap_servers, ORDERS_TOPIC, CONSUMER_GROUP, record)
        )

    @app.readiness_check("orders-table")
    async def table_reachable() -> None:
        assert ledger is not None
        await ledger.ping()

    @app.readiness_check("kafka-consumer")
    async def consumer_connected() -> None:
        if worker is None or not worker.connected():
            raise RuntimeError(f"consumer group {CONSUMER_GROUP}: not connected to Kafka")

    @app.errorhandler(ClientError)
    @app.errorhandler(BotoCoreError)
    async def table_unavailable(error: Exception) -> Response:
        return error_response(503, f"orders table {settings.orders_table} unavailable: {error}")

    @app.get("/orders/<order_id>")
    @answers(404, 503)
    @validate_response(RecordedOrder)
    async def get_order(order_id: str) -> RecordedOrder:
        assert ledger is not None
        order = await ledger.get(order_id)
        if order is None:
            abort(404, f"no order with id {order_id}")
        return order

    return app

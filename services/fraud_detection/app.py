"""fraud-detection's consumer and HTTP API: score every order, look one up, list the flagged ones."""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord
from opentelemetry import metrics, trace
from quart import abort
from quart_schema import validate_querystring, validate_response

from services.common.app import ServiceApp
from services.common.config import ServiceSettings
from services.common.flag_contract import Flag
from services.common.kafka import Worker
from services.common.openapi import answers
from services.common.orders import ORDERS_TOPIC, decode
from services.fraud_detection.results import Review, Reviews
from services.fraud_detection.rules import assess
from services.fraud_detection.schemas import FlaggedOrders, FlaggedQuery, OrderReview

CONSUMER_GROUP = "fraud-detection"
QUEUE_PROBLEMS_DELAY_SECONDS = 0.05

tracer = trace.get_tracer(__name__)
meter = metrics.get_meter(__name__)
processed_counter = meter.create_counter(
    "app.fraud_detection.processed", description="Order deliveries processed, by delivery: first or repeat"
)
flagged_counter = meter.create_counter("app.fraud_detection.flagged", description="Orders flagged as fraud")


class Settings(ServiceSettings):
    kafka_bootstrap_servers: str = "kafka:9092"


def _body(review: Review) -> OrderReview:
    return OrderReview(
        order_id=review.order_id,
        score=review.assessment.score,
        flagged=review.assessment.flagged,
        reasons=list(review.assessment.reasons),
        deliveries=review.deliveries,
    )


def create_app(settings: Settings | None = None) -> ServiceApp:
    settings = settings or Settings.from_env()
    app = ServiceApp("fraud-detection", settings, title="Shopstack fraud detection")
    reviews = Reviews()
    worker: Worker | None = None

    async def score_order(message: ConsumerRecord) -> None:
        # No request context here: the flags come from the app, not `flags()`.
        if app.flags.number(Flag.KAFKA_QUEUE_PROBLEMS) > 0:
            await asyncio.sleep(QUEUE_PROBLEMS_DELAY_SECONDS)
        order = decode(message.value)
        span = trace.get_current_span()
        span.set_attribute("app.order.id", order.order_id)
        found = reviews.redelivered(order.order_id)
        if found is None:
            with tracer.start_as_current_span("assess order") as assess_span:
                assessment = assess(order)
                assess_span.set_attributes(
                    {"app.fraud.score": assessment.score, "app.fraud.reasons": list(assessment.reasons)}
                )
            found = reviews.add(order.order_id, assessment)
            if assessment.flagged:
                flagged_counter.add(1)
        processed_counter.add(1, {"delivery": "first" if found.deliveries == 1 else "repeat"})
        span.set_attributes(
            {
                "app.fraud.score": found.assessment.score,
                "app.fraud.flagged": found.assessment.flagged,
                "app.fraud.deliveries": found.deliveries,
            }
        )

    @app.before_serving
    async def start() -> None:
        nonlocal worker
        worker = await app.enter(
            Worker(settings.kafka_bootstrap_servers, ORDERS_TOPIC, CONSUMER_GROUP, score_order)
        )

    @app.readiness_check("kafka-consumer")
    async def consumer_connected() -> None:
        if worker is None or not worker.connected():
            raise RuntimeError(f"consumer group {CONSUMER_GROUP}: not connected to Kafka")

    @app.get("/orders/<order_id>")
    @answers(404)
    @validate_response(OrderReview)
    async def get_review(order_id: str) -> OrderReview:
        found = reviews.get(order_id)
        if found is None:
            abort(404, f"no reviewed order with id {order_id}")
        return _body(found)

    @app.get("/flagged")
    @validate_querystring(FlaggedQuery)
    @validate_response(FlaggedOrders)
    async def list_flagged(query_args: FlaggedQuery) -> FlaggedOrders:
        return FlaggedOrders(orders=[_body(found) for found in reviews.flagged(query_args.limit)])

    return app

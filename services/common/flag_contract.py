"""The feature flags' contract: which flags exist and the flagd flag-definition file that sets them.

The services evaluate flags (`flags`, through OpenFeature); the deploy writes the file (a ConfigMap).
Both read this module, which imports nothing but the standard library, so the deploy loads no OpenFeature
or gRPC for an enum.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Flag(StrEnum):
    """The flags of the OpenTelemetry Demo that Shopstack implements: the services' failures, and the load
    generator's flood of the home page."""

    PRODUCT_CATALOG_FAILURE = "productCatalogFailure"
    RECOMMENDATION_CACHE_FAILURE = "recommendationCacheFailure"
    PAYMENT_FAILURE = "paymentFailure"
    PAYMENT_UNREACHABLE = "paymentUnreachable"
    CART_FAILURE = "cartFailure"
    KAFKA_QUEUE_PROBLEMS = "kafkaQueueProblems"
    FAILED_READINESS_PROBE = "failedReadinessProbe"
    LOAD_GENERATOR_FLOOD_HOMEPAGE = "loadGeneratorFloodHomepage"


FLAG_DESCRIPTIONS: dict[Flag, str] = {
    Flag.PRODUCT_CATALOG_FAILURE: "Fail product catalog service on a specific product",
    Flag.RECOMMENDATION_CACHE_FAILURE: "Fail recommendation service cache",
    Flag.PAYMENT_FAILURE: "Fail payment service charge requests n%",
    Flag.PAYMENT_UNREACHABLE: "Payment service is unavailable",
    Flag.CART_FAILURE: "Fail cart service",
    Flag.KAFKA_QUEUE_PROBLEMS: "Overload Kafka queue and delay its consumers",
    Flag.FAILED_READINESS_PROBE: "Readiness probe failure for cart service",
    Flag.LOAD_GENERATOR_FLOOD_HOMEPAGE: "Flood the frontend with a large amount of requests",
}
#: a probability (paymentFailure) or a count: extra copies of each order, extra home-page requests per flood
NUMERIC_FLAGS = frozenset(
    {Flag.PAYMENT_FAILURE, Flag.KAFKA_QUEUE_PROBLEMS, Flag.LOAD_GENERATOR_FLOOD_HOMEPAGE}
)


def flag_definitions(values: Mapping[Flag, bool | float]) -> dict[str, Any]:
    """A flagd flag-definition document with every flag, `on` for those in `values`.

    The description goes in `metadata`: the in-process flagd evaluator rejects unknown flag fields.

    Boolean flags are on when true; numeric flags carry their value (a probability or a count).
    """
    flags: dict[str, Any] = {}
    for flag, description in FLAG_DESCRIPTIONS.items():
        off: bool | float = 0 if flag in NUMERIC_FLAGS else False
        value = values.get(flag, off)
        flags[flag.value] = {
            "metadata": {"description": description},
            "state": "ENABLED",
            "variants": {"on": value, "off": off},
            "defaultVariant": "on" if value else "off",
        }
    return {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": flags}

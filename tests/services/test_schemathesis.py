"""Each service's own OpenAPI document (`/openapi.json`), fuzzed by schemathesis against the running service
process: for inputs the document allows and inputs it forbids, no answer is a server error, every status
and body is one the document lists, and forbidden input is refused.

Runs are bounded and derandomized (the same cases every run). `/healthz`, `/readyz`, `/metrics` and `/drain`
are hidden from the documents (probes and scrapes, not JSON APIs), so they are not fuzzed. frontend-proxy
has no document of its own: it forwards `/openapi.json` with everything else to frontend.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from services.common.contracts import CARD_NUMBER_FORMAT
from services.payment.cards import luhn_valid
from tests.support.shop import Shop
from tests.support.shopper import ADDRESS, VISA

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
FUZZ = settings(
    max_examples=20,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _with_check_digit(body: str) -> str:
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))


# The documented "payment-card" format: VISA numbers with a valid Luhn check digit.
schemathesis.openapi.format(
    CARD_NUMBER_FORMAT, st.from_regex(r"4[0-9]{14}", fullmatch=True).map(_with_check_digit)
)


def load(shop: Shop, service: str) -> OpenApiSchema:
    shop.ensure(service)
    return schemathesis.openapi.from_url(f"{shop.url(service)}/openapi.json")


def fuzz(schema: OpenApiSchema) -> None:
    """Every operation of `schema`, with input it allows and input it forbids.

    (Not schemathesis's own `from_fixture` runner: it renames pytest nodes through an attribute pytest 9
    no longer has.)"""
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: Case) -> None:
                case.call_and_validate(checks=CHECKS)

            try:
                call()
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise  # an operation that forbids nothing (no parameters, any string) has no negatives


@pytest.mark.parametrize(
    "service",
    [
        "cart",
        "payment",
        "product-catalog",
        "recommendation",
        "checkout",
        "frontend",
        "accounting",
        "fraud-detection",
    ],
)
def test_the_service_answers_as_its_document_says(shop: Shop, service: str) -> None:
    fuzz(load(shop, service))


@pytest.fixture(scope="module")
def cart_api(shop: Shop) -> OpenApiSchema:
    return load(shop, "cart")


@pytest.fixture(scope="module")
def checkout_api(shop: Shop) -> OpenApiSchema:
    return load(shop, "checkout")


def test_an_order_placed_after_adding_to_the_cart_matches_both_documents(
    shop: Shop, cart_api: OpenApiSchema, checkout_api: OpenApiSchema
) -> None:
    """The sequence the fuzzing cannot reach on its own (a random user's cart is empty): add, read, order."""
    user = f"user-{uuid.uuid4().hex[:12]}"
    with httpx.Client(timeout=30) as http:
        added = http.post(
            f"{shop.url('cart')}/carts/{user}/items", json={"product_id": "OLJCESPC7Z", "quantity": 2}
        )
        read = http.get(f"{shop.url('cart')}/carts/{user}")
        body = {"user_id": user, "email": "someone@example.com", "address": ADDRESS, "credit_card": VISA}
        placed = http.post(f"{shop.url('checkout')}/checkout", json=body)
    assert (added.status_code, read.status_code, placed.status_code) == (200, 200, 201)
    assert placed.json()["items"] == [
        {"product_id": "OLJCESPC7Z", "quantity": 2, "unit_price": placed.json()["items"][0]["unit_price"]}
    ]
    cart_api["/carts/{user_id}/items"]["POST"].validate_response(added)
    cart_api["/carts/{user_id}"]["GET"].validate_response(read)
    checkout_api["/checkout"]["POST"].validate_response(placed)

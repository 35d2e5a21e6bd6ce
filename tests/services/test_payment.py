"""payment over HTTP: charges, idempotency, voids and every rejection."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from services.common.flag_contract import Flag
from tests.support.shop import FlagsFile, Shop
from tests.support.shopper import VISA

USD_10 = {"currency_code": "USD", "units": 10, "nanos": 500_000_000}


@pytest.fixture(scope="module")
def payment(shop: Shop) -> httpx.Client:
    shop.ensure("payment")
    return httpx.Client(base_url=shop.url("payment"), timeout=10)


def charge(payment: httpx.Client, **overrides: Any) -> httpx.Response:
    body = {"idempotency_key": str(uuid.uuid4()), "amount": USD_10, "credit_card": VISA, **overrides}
    return payment.post("/charges", json=body)


def test_a_valid_card_is_charged_and_the_charge_can_be_looked_up(payment: httpx.Client) -> None:
    response = charge(payment)
    assert response.status_code == 201
    body = response.json()
    assert body["card_type"] == "visa"
    assert body["card_last4"] == "0454"
    assert body["amount"] == USD_10
    assert payment.get(f"/charges/{body['transaction_id']}").json()["status"] == "captured"


def test_a_retried_charge_with_the_same_key_is_taken_once(payment: httpx.Client) -> None:
    key = str(uuid.uuid4())
    first = charge(payment, idempotency_key=key)
    second = charge(payment, idempotency_key=key)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["transaction_id"] == second.json()["transaction_id"]


def test_reusing_a_key_for_another_amount_is_a_conflict(payment: httpx.Client) -> None:
    key = str(uuid.uuid4())
    charge(payment, idempotency_key=key)
    response = charge(payment, idempotency_key=key, amount={"currency_code": "USD", "units": 99})
    assert response.status_code == 409


def test_a_voided_charge_reports_voided(payment: httpx.Client) -> None:
    transaction = charge(payment).json()["transaction_id"]
    assert payment.post(f"/charges/{transaction}/void").json()["status"] == "voided"
    assert payment.get(f"/charges/{transaction}").json()["status"] == "voided"


@pytest.mark.parametrize(
    ("card", "field"),
    [
        ({**VISA, "number": "4432801561520455"}, "credit_card.number"),  # fails Luhn
        ({**VISA, "number": "378282246310005"}, "credit_card.number"),  # amex is refused
        ({**VISA, "expiration_year": 2020}, "credit_card.expiration_year"),
    ],
    ids=["luhn", "amex", "expired"],
)
def test_a_card_that_cannot_be_charged_is_a_400_naming_the_field(
    payment: httpx.Client, card: dict[str, Any], field: str
) -> None:
    response = charge(payment, credit_card=card)
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["fields"]] == [field]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"credit_card": {**VISA, "cvv": "1"}}, "credit_card.cvv"),
        ({"credit_card": {**VISA, "expiration_month": 13}}, "credit_card.expiration_month"),
        ({"amount": {"currency_code": "usd", "units": 1}}, "amount.currency_code"),
        ({"amount": {"currency_code": "USD", "units": 1, "nanos": -5}}, "amount"),
        ({"idempotency_key": ""}, "idempotency_key"),
    ],
    ids=["cvv", "month", "currency", "sign", "key"],
)
def test_a_malformed_charge_is_a_400_naming_the_field(
    payment: httpx.Client, overrides: dict[str, Any], field: str
) -> None:
    response = charge(payment, **overrides)
    assert response.status_code == 400
    assert field in [f["field"] for f in response.json()["fields"]]


def test_a_zero_amount_is_refused(payment: httpx.Client) -> None:
    response = charge(payment, amount={"currency_code": "USD", "units": 0})
    assert response.status_code == 400
    assert response.json()["fields"][0]["field"] == "amount"


def test_a_body_that_is_not_json_is_a_400(payment: httpx.Client) -> None:
    response = payment.post("/charges", content=b"not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_an_unknown_transaction_is_a_404(payment: httpx.Client) -> None:
    assert payment.get("/charges/nope").status_code == 404
    assert payment.post("/charges/nope/void").status_code == 404


def test_payment_failure_flag_fails_charges(payment: httpx.Client, clean_flags: FlagsFile) -> None:
    clean_flags.set(Flag.PAYMENT_FAILURE, 1)
    failed = charge(payment)
    assert failed.status_code == 503
    assert "paymentFailure" in failed.json()["error"]
    clean_flags.clear()
    assert charge(payment).status_code == 201


def test_the_openapi_document_describes_the_charge_api(payment: httpx.Client) -> None:
    document = payment.get("/openapi.json").json()
    assert "/charges" in document["paths"]
    assert "CreditCard" in document["components"]["schemas"]

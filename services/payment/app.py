"""payment's HTTP API: take a charge (idempotent), look one up, void one."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from opentelemetry import metrics, trace
from quart import abort
from quart_schema import validate_request, validate_response

from services.common.app import ServiceApp, error_response, flags
from services.common.config import ServiceSettings
from services.common.contracts import ChargeRequest, ChargeResponse
from services.common.flag_contract import Flag
from services.common.openapi import answers
from services.payment.cards import CardRejected, check_card
from services.payment.ledger import Charge, IdempotencyConflict, Ledger

meter = metrics.get_meter(__name__)
charges_counter = meter.create_counter("app.payment.charges", description="Charge attempts by result")


class Settings(ServiceSettings):
    pass


def _response(charge: Charge) -> ChargeResponse:
    return ChargeResponse(
        transaction_id=charge.transaction_id,
        amount=charge.amount,
        card_type=charge.card_type,
        card_last4=charge.card_last4,
        status=charge.status,
    )


def create_app(settings: Settings | None = None) -> ServiceApp:
    app = ServiceApp("payment", settings or Settings.from_env(), title="Shopstack payment")
    ledger = Ledger()

    @app.post("/charges")
    @answers(409, 503)
    @validate_request(ChargeRequest)
    @validate_response(ChargeResponse, 201)
    @validate_response(ChargeResponse, 200)
    async def charge(data: ChargeRequest):  # type: ignore[no-untyped-def]
        span = trace.get_current_span()
        card = data.credit_card
        span.set_attribute("app.payment.amount", str(data.amount))
        if random.random() < flags().number(Flag.PAYMENT_FAILURE):
            charges_counter.add(1, {"result": "failed"})
            return error_response(503, "payment request failed: invalid token (paymentFailure)")
        try:
            kind = check_card(
                card.number, card.expiration_year, card.expiration_month, datetime.now(UTC).date()
            )
            recorded, new = ledger.charge(data.idempotency_key, data.amount, kind, card.number[-4:])
        except CardRejected as err:
            charges_counter.add(1, {"result": "rejected"})
            return error_response(400, str(err), [{"field": err.field, "message": str(err)}])
        except IdempotencyConflict as err:
            return error_response(409, str(err))
        span.set_attributes(
            {"app.payment.card_type": kind, "app.payment.transaction.id": recorded.transaction_id}
        )
        charges_counter.add(1, {"result": "charged" if new else "replayed", "card_type": kind})
        return _response(recorded), 201 if new else 200

    @app.get("/charges/<transaction_id>")
    @answers(404)
    @validate_response(ChargeResponse)
    async def get_charge(transaction_id: str) -> ChargeResponse:
        found = ledger.get(transaction_id)
        if found is None:
            abort(404, f"no charge with transaction id {transaction_id}")
        return _response(found)

    @app.post("/charges/<transaction_id>/void")
    @answers(404)
    @validate_response(ChargeResponse)
    async def void_charge(transaction_id: str) -> ChargeResponse:
        voided = ledger.void(transaction_id)
        if voided is None:
            abort(404, f"no charge with transaction id {transaction_id}")
        charges_counter.add(1, {"result": "voided"})
        return _response(voided)

    return app

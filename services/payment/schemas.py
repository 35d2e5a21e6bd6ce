"""payment's request and response bodies."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.common.money import Money


class CreditCard(BaseModel):
    number: str = Field(pattern=r"^\d{12,19}$", examples=["4432801561520454"])
    cvv: str = Field(pattern=r"^\d{3,4}$")
    expiration_year: int = Field(ge=2000, le=2100)
    expiration_month: int = Field(ge=1, le=12)


class ChargeRequest(BaseModel):
    idempotency_key: str = Field(min_length=1, max_length=128)
    amount: Money
    credit_card: CreditCard


class ChargeResponse(BaseModel):
    transaction_id: str
    amount: Money
    card_type: str
    card_last4: str
    status: str

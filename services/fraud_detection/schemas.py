"""fraud-detection's query and response bodies."""

from __future__ import annotations

from pydantic import BaseModel, Field


class OrderReview(BaseModel):
    order_id: str
    score: int = Field(ge=0, le=100, description="The sum of the tripped rules' points, capped at 100")
    flagged: bool
    reasons: list[str] = Field(description="The names of the rules the order tripped")
    deliveries: int = Field(ge=1, description="How many times the order was delivered (duplicates)")


class FlaggedQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000)


class FlaggedOrders(BaseModel):
    orders: list[OrderReview]

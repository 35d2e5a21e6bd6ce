"""Money as the OpenTelemetry Demo represents it: whole units plus nano units, never a float.

`units` is bounded as the Demo's protobuf bounds it (an int64), which also keeps every amount exact in
Python's default decimal context (28 digits) and in a DynamoDB number (38 digits). Read from JSON, both
numbers must be integers: `true`, `"5"` and `5.0` are refused.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

NANOS_PER_UNIT = 1_000_000_000
MAX_UNITS = 2**63 - 1


class Money(BaseModel):
    """An amount of one currency; `units` and `nanos` carry the same sign."""

    model_config = ConfigDict(frozen=True, strict=True)

    currency_code: str = Field(pattern=r"^[A-Z]{3}$", examples=["USD"])
    units: int = Field(ge=-MAX_UNITS, le=MAX_UNITS)
    nanos: int = Field(default=0, gt=-NANOS_PER_UNIT, lt=NANOS_PER_UNIT)

    @model_validator(mode="after")
    def _same_sign(self) -> Self:
        if (self.units > 0 and self.nanos < 0) or (self.units < 0 and self.nanos > 0):
            raise ValueError("units and nanos must have the same sign")
        return self

    @classmethod
    def from_decimal(cls, amount: Decimal | str | int, currency_code: str = "USD") -> Money:
        """Build from a decimal amount, rounding half-even to the nano."""
        total_nanos = int((Decimal(amount) * NANOS_PER_UNIT).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        units, nanos = divmod(abs(total_nanos), NANOS_PER_UNIT)
        sign = -1 if total_nanos < 0 else 1
        return cls(currency_code=currency_code, units=sign * units, nanos=sign * nanos)

    @classmethod
    def zero(cls, currency_code: str = "USD") -> Money:
        return cls(currency_code=currency_code, units=0, nanos=0)

    def to_decimal(self) -> Decimal:
        return Decimal(self.units) + Decimal(self.nanos) / NANOS_PER_UNIT

    def __add__(self, other: Money) -> Money:
        if other.currency_code != self.currency_code:
            raise ValueError(f"cannot add {other.currency_code} to {self.currency_code}")
        return Money.from_decimal(self.to_decimal() + other.to_decimal(), self.currency_code)

    def times(self, quantity: int) -> Money:
        return Money.from_decimal(self.to_decimal() * quantity, self.currency_code)

    def is_positive(self) -> bool:
        return self.units > 0 or self.nanos > 0

    def __str__(self) -> str:
        return f"{self.to_decimal().quantize(Decimal('0.01'))} {self.currency_code}"

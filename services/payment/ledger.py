"""The charges taken, keyed by idempotency key so that a retried charge is never taken twice."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass

from services.common.money import Money

MAX_CHARGES = 100_000


class IdempotencyConflict(Exception):
    """The idempotency key was used before for a different amount or card."""


@dataclass
class Charge:
    transaction_id: str
    idempotency_key: str
    amount: Money
    card_type: str
    card_last4: str
    status: str = "captured"


class Ledger:
    """Charges in memory, bounded: the oldest are forgotten past `MAX_CHARGES`."""

    def __init__(self, max_charges: int = MAX_CHARGES) -> None:
        self._by_key: OrderedDict[str, Charge] = OrderedDict()
        self._by_id: dict[str, Charge] = {}
        self._max = max_charges

    def charge(
        self, idempotency_key: str, amount: Money, card_type: str, card_last4: str
    ) -> tuple[Charge, bool]:
        """Record a charge; return it and whether it is new (False when replayed)."""
        existing = self._by_key.get(idempotency_key)
        if existing is not None:
            if existing.amount != amount or existing.card_last4 != card_last4:
                raise IdempotencyConflict(
                    f"idempotency key {idempotency_key} was used for a different charge"
                )
            return existing, False
        charge = Charge(str(uuid.uuid4()), idempotency_key, amount, card_type, card_last4)
        self._by_key[idempotency_key] = charge
        self._by_id[charge.transaction_id] = charge
        if len(self._by_key) > self._max:
            _, oldest = self._by_key.popitem(last=False)
            del self._by_id[oldest.transaction_id]
        return charge, True

    def get(self, transaction_id: str) -> Charge | None:
        return self._by_id.get(transaction_id)

    def void(self, transaction_id: str) -> Charge | None:
        charge = self._by_id.get(transaction_id)
        if charge is not None:
            charge.status = "voided"
        return charge

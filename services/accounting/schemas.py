"""accounting's response bodies."""

from __future__ import annotations

from datetime import datetime

from services.common.orders import OrderPlaced


class RecordedOrder(OrderPlaced):
    """An order as the orders table holds it: the event as published, and when accounting recorded it."""

    recorded_at: datetime

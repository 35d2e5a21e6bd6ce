"""The orders table (DynamoDB): each order written once, by a put conditional on its order id.

Money is stored as the event carries it, whole `units` and `nanos` integers (DynamoDB numbers, read back
as exact Decimals), never as a float.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from services.accounting.schemas import RecordedOrder
from services.common.aws import dynamodb_span, error_code
from services.common.orders import OrderPlaced, UnreadableEvent

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.service_resource import Table


ONLY_IF_NEW = "attribute_not_exists(order_id)"


class OrdersLedger:
    """Writes and reads orders in one DynamoDB table keyed by `order_id`."""

    def __init__(self, table: Table) -> None:
        self._table = table

    async def record(self, order: OrderPlaced) -> bool:
        """Write `order` unless it is there already; True when written, False for a duplicate.

        An order DynamoDB refuses as invalid (an empty key, an item over 400 KB) can never be written:
        it is raised as `UnreadableEvent` so the consumer skips it instead of retrying it for ever.
        Any other failure (throttling, the table unreachable) propagates and the message is retried.
        """
        item: dict[str, Any] = {
            **order.model_dump(mode="json"),
            "recorded_at": datetime.now(UTC).isoformat(),
        }
        with dynamodb_span("PutItem", self._table.name):
            try:
                await self._table.put_item(Item=item, ConditionExpression=ONLY_IF_NEW)
            except ClientError as err:
                code = error_code(err)
                if code == "ConditionalCheckFailedException":
                    return False
                if code == "ValidationException":
                    raise UnreadableEvent(f"order {order.order_id!r} cannot be stored: {err}") from err
                raise
        return True

    async def get(self, order_id: str) -> RecordedOrder | None:
        """The recorded order, or None when there is none (or the id cannot be a key)."""
        with dynamodb_span("GetItem", self._table.name):
            try:
                response = await self._table.get_item(Key={"order_id": order_id}, ConsistentRead=True)
            except ClientError as err:
                if error_code(err) == "ValidationException":
                    return None
                raise
        item = response.get("Item")
        # DynamoDB's numbers are Decimals: lax here, where Money is strict about the JSON it is sent
        return None if item is None else RecordedOrder.model_validate(item, strict=False)

    async def ping(self) -> None:
        """Raise unless the table exists and answers (untraced: readiness probes would flood traces)."""
        await self._table.load()

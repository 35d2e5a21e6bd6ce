"""The carts in DynamoDB: one item per user, `{"user_id": S, "items": M{product_id: N}}`.

Adding to a line is one conditional update expression, so concurrent adds from several replicas are all
counted. The first add to a user's cart creates the item with a conditional put; if another replica
created it in between, the add is retried as an update. A cart holds at most `MAX_LINES` products, which
keeps the item far below DynamoDB's 400 KB item limit, and a line at most `MAX_LINE_QUANTITY` units: an add
that would pass either bound is refused by the same conditional update, so it changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from botocore.exceptions import ClientError

from services.common.aws import THROTTLED_RETRY_AFTER, ServiceTable, error_code
from services.common.contracts import MAX_LINE_QUANTITY
from services.common.unavailable import Unavailable

MAX_LINES = 100
ADD_ATTEMPTS = 3
CONDITION_FAILED = "ConditionalCheckFailedException"


class CartFull(Exception):
    """The cart already holds `MAX_LINES` other products."""


class LineFull(Exception):
    """The add would take the product's line past `MAX_LINE_QUANTITY` units."""


@dataclass(frozen=True)
class Line:
    product_id: str
    quantity: int


class CartStore(ServiceTable):
    """The carts table; `use` it with an open DynamoDB resource before the first call."""

    store = "cart store"

    async def lines(self, user_id: str) -> list[Line]:
        with self.call("GetItem"):
            response = await self.table.get_item(Key={"user_id": user_id}, ConsistentRead=True)
        return _lines(response.get("Item", {}))

    async def add(self, user_id: str, product_id: str, quantity: int) -> list[Line]:
        """Add `quantity` units of `product_id`; return the cart's lines afterwards."""
        for _ in range(ADD_ATTEMPTS):
            item = await self._add_to_existing(user_id, product_id, quantity)
            if item is not None:
                return _lines(item)
            if await self._create(user_id, product_id, quantity):
                return [Line(product_id, quantity)]
        raise Unavailable(
            f"{self.store} unavailable: the cart of {user_id} kept changing; try again", THROTTLED_RETRY_AFTER
        )

    async def empty(self, user_id: str) -> None:
        with self.call("DeleteItem"):
            await self.table.delete_item(Key={"user_id": user_id})

    async def _add_to_existing(
        self, user_id: str, product_id: str, quantity: int
    ) -> Mapping[str, Any] | None:
        """The updated item, or None when the user has no cart yet; `CartFull` when no line is left,
        `LineFull` when the product's line has no room for `quantity` more."""
        with self.call("UpdateItem"):
            try:
                response = await self.table.update_item(
                    Key={"user_id": user_id},
                    UpdateExpression=(
                        "SET #items.#product = if_not_exists(#items.#product, :zero) + :quantity"
                    ),
                    ConditionExpression=(
                        "attribute_exists(#items) AND "
                        "(attribute_exists(#items.#product) OR size(#items) < :max_lines) AND "
                        "(attribute_not_exists(#items.#product) OR #items.#product <= :room)"
                    ),
                    ExpressionAttributeNames={"#items": "items", "#product": product_id},
                    ExpressionAttributeValues={
                        ":zero": 0,
                        ":quantity": quantity,
                        ":max_lines": MAX_LINES,
                        ":room": MAX_LINE_QUANTITY - quantity,
                    },
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as err:
                if error_code(err) != CONDITION_FAILED:
                    raise
                old: Mapping[str, Any] | None = cast(Mapping[str, Any], err.response).get("Item")
                if old is None:
                    return None
                held = old.get("items", {}).get("M", {}).get(product_id)
                if held is not None:
                    raise LineFull(
                        f"a cart line holds at most {MAX_LINE_QUANTITY} units; "
                        f"this one has {held['N']} of {product_id}"
                    ) from None
                raise CartFull(f"a cart holds at most {MAX_LINES} different products") from None
        return response["Attributes"]

    async def _create(self, user_id: str, product_id: str, quantity: int) -> bool:
        """Create the cart with its first line; False when it exists already."""
        with self.call("PutItem"):
            try:
                await self.table.put_item(
                    Item={"user_id": user_id, "items": {product_id: quantity}},
                    ConditionExpression="attribute_not_exists(user_id)",
                )
            except ClientError as err:
                if error_code(err) != CONDITION_FAILED:
                    raise
                return False
        return True


def _lines(item: Mapping[str, Any]) -> list[Line]:
    """The item's lines in product id order (DynamoDB maps keep no order)."""
    items: Mapping[str, Any] = item.get("items", {})
    return [Line(product_id, int(quantity)) for product_id, quantity in sorted(items.items())]

"""cart's request and response bodies, and the rule for a user id."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

USER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
PRODUCT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_QUANTITY_PER_ADD = 100

_USER_ID = re.compile(USER_ID_PATTERN)


def valid_user_id(user_id: str) -> bool:
    return _USER_ID.fullmatch(user_id) is not None


class AddItem(BaseModel):
    product_id: str = Field(pattern=PRODUCT_ID_PATTERN, examples=["OLJCESPC7Z"])
    quantity: int = Field(ge=1, le=MAX_QUANTITY_PER_ADD)


class CartLine(BaseModel):
    product_id: str
    quantity: int = Field(ge=1)


class Cart(BaseModel):
    user_id: str
    items: list[CartLine]

"""product-catalog's response bodies and search query; the Product shape is the contract its peers read."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.common.money import Money

PRODUCT_ID_PATTERN = r"^[A-Z0-9]{10}$"

Category = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,39}$")]


class Product(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=PRODUCT_ID_PATTERN, examples=["OLJCESPC7Z"])
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=2000)
    picture: str = Field(pattern=r"^[A-Z0-9]{10}\.svg$", examples=["OLJCESPC7Z.svg"])
    price: Money
    categories: list[Category] = Field(min_length=1)


class ProductList(BaseModel):
    products: list[Product]


class SearchQuery(BaseModel):
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]

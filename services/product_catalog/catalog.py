"""The catalog: products read once from a JSON file shipped with the service, looked up and searched.

The file is checked as a whole before the service takes traffic: every product well formed, ids
unique, each picture named after its product, every price a positive amount in USD. A catalog that
fails any check stops start-up with one line saying where.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from services.common.config import ConfigError
from services.common.contracts import Product

DEFAULT_CATALOG_FILE = Path(__file__).with_name("products.json")
CURRENCY = "USD"
MAX_REPORTED_PROBLEMS = 3


class CatalogError(ConfigError):
    """The catalog file cannot be read or breaks a rule; the message names the file and the fault."""


class CatalogFile(BaseModel):
    """The file's shape: `{"products": [Product, ...]}`, nothing else."""

    model_config = ConfigDict(extra="forbid")

    products: list[Product]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.products:
            raise ValueError("the catalog has no products")
        seen: set[str] = set()
        for index, product in enumerate(self.products):
            where = f"products.{index} ({product.id})"
            if product.id in seen:
                raise ValueError(f"{where}: the id is used twice")
            seen.add(product.id)
            if product.picture != f"{product.id}.svg":
                raise ValueError(f"{where}: picture must be {product.id}.svg, not {product.picture}")
            if product.price.currency_code != CURRENCY or not product.price.is_positive():
                raise ValueError(f"{where}: price must be a positive amount in {CURRENCY}")
        return self


class Catalog:
    """The products in file order, by id, with a search text per product."""

    def __init__(self, products: list[Product]) -> None:
        self._products = products
        self._by_id = {product.id: product for product in products}
        self._search_text = {
            product.id: "\n".join((product.name, product.description, *product.categories)).casefold()
            for product in products
        }

    def __len__(self) -> int:
        return len(self._products)

    def products(self) -> list[Product]:
        return list(self._products)

    def get(self, product_id: str) -> Product | None:
        return self._by_id.get(product_id)

    def search(self, query: str) -> list[Product]:
        """Products whose name, description or categories contain every word of `query`, any case."""
        words = query.casefold().split()
        return [
            product
            for product in self._products
            if all(word in self._search_text[product.id] for word in words)
        ]


def load_catalog(path: Path = DEFAULT_CATALOG_FILE) -> Catalog:
    """Read and check the catalog file; raise `CatalogError` with a one-line reason."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise CatalogError(f"catalog file {path} cannot be read: {err.strerror}") from None
    except ValueError as err:
        raise CatalogError(f"catalog file {path} is not JSON: {err}") from None
    try:
        catalog = CatalogFile.model_validate(document)
    except ValidationError as err:
        raise CatalogError(f"catalog file {path} is invalid: {_summary(err)}") from None
    return Catalog(catalog.products)


def _summary(error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in e['loc']) or 'file'}: {e['msg']}"
        for e in error.errors(include_url=False)
    ]
    more = len(problems) - MAX_REPORTED_PROBLEMS
    summary = "; ".join(problems[:MAX_REPORTED_PROBLEMS])
    return f"{summary} (and {more} more)" if more > 0 else summary

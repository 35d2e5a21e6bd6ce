"""Choosing recommendations: a random few of the catalog's products, never one the shopper gave."""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable

from services.common.contracts import Product

MAX_RECOMMENDATIONS = 5


def recommend(
    products: Iterable[Product],
    excluded: Collection[str],
    rng: random.Random,
    limit: int = MAX_RECOMMENDATIONS,
) -> list[Product]:
    """Up to `limit` distinct products, chosen at random, none of whose ids is in `excluded`.

    `products` may repeat a product (the leaking cache does); each appears at most once in the result.
    """
    candidates: dict[str, Product] = {}
    for product in products:
        if product.id not in excluded:
            candidates.setdefault(product.id, product)
    return rng.sample(list(candidates.values()), min(limit, len(candidates)))

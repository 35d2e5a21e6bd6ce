"""recommendation's rules: which products it may choose, how long it keeps the catalog, and how far the
leak of recommendationCacheFailure can grow."""

from __future__ import annotations

import asyncio
import random

import pytest

from services.common.contracts import Product, RecommendationQuery
from services.product_catalog.catalog import load_catalog
from services.recommendation.cache import LeakingCache, ProductListCache
from services.recommendation.selection import MAX_RECOMMENDATIONS, recommend

PRODUCTS = load_catalog().products()
IDS = [product.id for product in PRODUCTS]


class Catalog:
    """Stands in for product-catalog's list endpoint, counting the calls it answers."""

    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self) -> list[Product]:
        self.calls += 1
        await asyncio.sleep(0)
        return list(PRODUCTS)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_distinct_products_are_recommended_from_a_large_catalog() -> None:
    for seed in range(50):
        chosen = recommend(PRODUCTS, frozenset(), random.Random(seed))
        assert len(chosen) == MAX_RECOMMENDATIONS
        assert len({product.id for product in chosen}) == MAX_RECOMMENDATIONS


def test_the_given_products_are_never_recommended() -> None:
    given = frozenset(IDS[:4])
    for seed in range(50):
        chosen = {product.id for product in recommend(PRODUCTS, given, random.Random(seed))}
        assert not chosen & given


def test_fewer_candidates_than_five_are_all_recommended() -> None:
    given = frozenset(IDS[3:])
    chosen = recommend(PRODUCTS, given, random.Random(1))
    assert sorted(product.id for product in chosen) == sorted(IDS[:3])


def test_nothing_is_recommended_when_every_product_is_given() -> None:
    assert recommend(PRODUCTS, frozenset(IDS), random.Random(1)) == []


def test_a_product_listed_many_times_is_recommended_at_most_once() -> None:
    repeated = [PRODUCTS[0]] * 100 + [PRODUCTS[1]] * 100 + [PRODUCTS[0].model_copy()]
    chosen = recommend(repeated, frozenset(), random.Random(1))
    assert sorted(product.id for product in chosen) == sorted(IDS[:2])


def test_recommendations_vary_between_calls() -> None:
    rng = random.Random(7)
    seen = {product.id for _ in range(30) for product in recommend(PRODUCTS, frozenset(), rng)}
    assert seen == set(IDS)


@pytest.mark.parametrize(
    ("value", "excluded"),
    [
        (None, set()),
        ("", set()),
        ("A1,B2", {"A1", "B2"}),
        (" A1 , ,B2,", {"A1", "B2"}),
    ],
)
def test_the_given_ids_are_read_from_a_comma_separated_list(value: str | None, excluded: set[str]) -> None:
    assert RecommendationQuery(product_ids=value).excluded() == excluded


async def test_the_product_list_is_fetched_once_per_time_to_live() -> None:
    catalog, clock = Catalog(), Clock()
    cache = ProductListCache(catalog.fetch, ttl=30, clock=clock)
    assert (await cache.get())[1] is False
    clock.now += 29
    products, hit = await cache.get()
    assert (hit, catalog.calls, products) == (True, 1, PRODUCTS)
    clock.now += 1
    assert (await cache.get())[1] is False
    assert catalog.calls == 2


async def test_concurrent_misses_share_one_fetch() -> None:
    catalog = Catalog()
    cache = ProductListCache(catalog.fetch, ttl=30)
    results = await asyncio.gather(*(cache.get() for _ in range(10)))
    assert catalog.calls == 1
    assert all(products == PRODUCTS for products, _ in results)


async def test_the_leaking_cache_grows_on_every_miss_and_hits_without_fetching() -> None:
    catalog = Catalog()
    leak = LeakingCache(catalog.fetch, max_entries=10_000, rng=random.Random(3))
    sizes = []
    for _ in range(20):
        before = catalog.calls
        _, hit = await leak.get()
        assert catalog.calls == before + (0 if hit else 1)
        sizes.append(leak.size)
    assert sizes == sorted(sizes)
    assert sizes[-1] > 4 * len(PRODUCTS)
    assert 0 < catalog.calls < 20


async def test_the_leak_stops_at_its_cap() -> None:
    catalog = Catalog()
    leak = LeakingCache(catalog.fetch, max_entries=500, miss_rate=1.0)
    for _ in range(40):
        await leak.get()
        assert leak.size <= 500
    assert leak.size == 500
    assert catalog.calls == 40


async def test_the_leaked_entries_still_yield_valid_recommendations() -> None:
    leak = LeakingCache(Catalog().fetch, max_entries=2_000, miss_rate=1.0)
    entries: list[Product] = []
    for _ in range(25):
        entries, _hit = await leak.get()
    assert len(entries) == 2_000
    chosen = recommend(entries, frozenset(IDS[:2]), random.Random(5))
    ids = [product.id for product in chosen]
    assert len(ids) == len(set(ids)) == MAX_RECOMMENDATIONS
    assert not set(ids) & set(IDS[:2])


async def test_releasing_the_leak_frees_its_entries() -> None:
    leak = LeakingCache(Catalog().fetch, miss_rate=1.0)
    for _ in range(5):
        await leak.get()
    leak.release()
    assert leak.size == 0

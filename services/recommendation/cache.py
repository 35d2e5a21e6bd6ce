"""Where recommendation gets the product list: a cache with a time to live, and the leaking cache that
`recommendationCacheFailure` switches to.

The leaking cache reproduces the OpenTelemetry Demo's memory leak: about half the calls miss, and each
miss appends the fresh list plus copies of a quarter of what is already cached, so the cache grows by a
quarter per miss and every request has more to sift through. Unlike the demo's, it stops growing at a
hard cap (`MAX_LEAKED_ENTRIES`, about 50 MiB of copies) so that it can never exhaust a machine.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from itertools import chain, islice

from services.common.contracts import Product

Fetch = Callable[[], Awaitable[list[Product]]]
Clock = Callable[[], float]

DEFAULT_TTL_SECONDS = 60.0
MAX_LEAKED_ENTRIES = 65_536
LEAK_MISS_RATE = 0.5


class ProductListCache:
    """The catalog's product list, fetched again once it is `ttl` seconds old."""

    def __init__(self, fetch: Fetch, ttl: float = DEFAULT_TTL_SECONDS, clock: Clock = time.monotonic) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._products: list[Product] = []
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> tuple[list[Product], bool]:
        """The product list and whether it came from the cache; concurrent misses share one fetch."""
        if self._fresh():
            return self._products, True
        async with self._lock:
            if self._fresh():
                return self._products, True
            self._products = await self._fetch()
            self._fetched_at = self._clock()
        return self._products, False

    def _fresh(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at < self._ttl


class LeakingCache:
    """A product list that keeps growing, with duplicates, up to `max_entries` entries."""

    def __init__(
        self,
        fetch: Fetch,
        max_entries: int = MAX_LEAKED_ENTRIES,
        miss_rate: float = LEAK_MISS_RATE,
        rng: random.Random | None = None,
    ) -> None:
        self._fetch = fetch
        self._max = max_entries
        self._miss_rate = miss_rate
        self._rng = rng or random.Random()
        self._entries: list[Product] = []

    @property
    def size(self) -> int:
        return len(self._entries)

    async def get(self) -> tuple[list[Product], bool]:
        """Every cached entry (duplicates included) and whether this call was a hit."""
        if self._entries and self._rng.random() >= self._miss_rate:
            return self._entries, True
        self._grow(await self._fetch())
        return self._entries, False

    def release(self) -> None:
        """Free the leaked entries, as restarting the service would."""
        self._entries = []

    def _grow(self, fresh: list[Product]) -> None:
        room = self._max - len(self._entries)
        copies = (product.model_copy() for product in self._entries[: len(self._entries) // 4])
        self._entries.extend(islice(chain(fresh, copies), max(room, 0)))

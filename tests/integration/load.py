"""A bounded, steady load of shoppers checking out, run in the background while a test disturbs the
stage; it records every order placed and every checkout that failed."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

from tests.support.shopper import Shopper

PRODUCT = "66VCHSJNUP"


@dataclass
class CheckoutLoad:
    """`shoppers` threads, each adding to its cart and checking out in turn, until `stop()`, `max_seconds`
    or `max_checkouts` (all together) is reached, whichever comes first."""

    shop_url: str
    shoppers: int = 2
    max_seconds: float = 300.0
    max_checkouts: int = 600
    pause_seconds: float = 0.2
    placed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> CheckoutLoad:
        deadline = time.monotonic() + self.max_seconds
        for number in range(self.shoppers):
            thread = threading.Thread(target=self._shop, args=(deadline,), name=f"shopper-{number}")
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    @property
    def attempts(self) -> int:
        return len(self.placed) + len(self.failures)

    def _shop(self, deadline: float) -> None:
        shopper = Shopper(self.shop_url)
        while not self._stop.is_set() and time.monotonic() < deadline and self.attempts < self.max_checkouts:
            try:
                added = shopper.add(PRODUCT)
                outcome = shopper.checkout() if added.status_code == 200 else added
                failure = (
                    None if outcome.status_code == 201 else f"{outcome.status_code} {outcome.text[:200]}"
                )
            except httpx.HTTPError as err:
                outcome, failure = None, f"{type(err).__name__}: {err}"
            with self._lock:
                if failure is None and outcome is not None:
                    self.placed.append(str(outcome.json()["order_id"]))
                else:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} {failure}")
            self._stop.wait(self.pause_seconds)

"""Polling for what happens asynchronously (Kafka delivery, telemetry export), bounded in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = ""
) -> T:
    """Call `probe` until it returns something truthy; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout:.0f}s: {what or probe}")
        time.sleep(interval)


def until(attempt: Callable[[], T], accept: Callable[[T], bool], timeout: float = 30.0, what: str = "") -> T:
    """Repeat `attempt` until `accept` holds for its result, for at most `timeout` seconds; that result."""

    def accepted() -> T | None:
        result = attempt()
        return result if accept(result) else None

    return eventually(accepted, timeout=timeout, what=what)

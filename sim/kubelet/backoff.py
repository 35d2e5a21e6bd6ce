"""The kubelet's restart back-off: the first restart at once, then base doubling up to a ceiling.

As the kubelet's flowcontrol back-off does (10 s doubling to 300 s), reset once a container has run
for twice the ceiling. The base is configurable so that tests run in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    base: float = 10.0
    ceiling: float = 300.0
    failures: int = 0

    def next_delay(self, ran_for: float) -> float:
        """The delay before the next restart of a container that just ran for `ran_for` seconds."""
        if ran_for >= 2 * self.ceiling:
            self.failures = 0
        delay = 0.0 if self.failures == 0 else min(self.ceiling, self.base * 2 ** (self.failures - 1))
        self.failures += 1
        return delay

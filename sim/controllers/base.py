"""The loop every controller shares: wake on a change to a watched resource type (or on a period), run
one level-triggered pass, and keep going whatever a pass hit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import ClassVar

from sim.k8s.store import Event, Store

log = logging.getLogger(__name__)


class Controller:
    """Subclasses set `name` and `watches` (store keys such as `pods` or `deployments.apps`) and implement
    `reconcile`; `period` > 0 also runs a pass that often (for controllers that sample or expire). A
    controller whose pass must wait on something outside the store (the ALB controller's calls to AWS)
    implements `run_pass`, the awaited pass, instead. `wants` narrows which events wake it; `wake` asks for
    a pass from elsewhere (a timer).

    `start()` runs in the store's event loop; `stop()` ends the loop and waits for it.
    """

    name: ClassVar[str] = "controller"
    watches: ClassVar[frozenset[str]] = frozenset()
    period: ClassVar[float] = 0.0

    def __init__(self, store: Store) -> None:
        self.store = store
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.store.listeners.append(self._on_event)
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.store.listeners.remove(self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wants(self, event: Event) -> bool:
        """Whether `event` may need a pass; by default any change to a watched type."""
        return event.key in self.watches

    def wake(self) -> None:
        """Run a pass soon (one pass for any number of calls before it starts)."""
        self._wake.set()

    def reconcile(self) -> None:
        """One pass: make the store's state converge on what the watched objects declare."""
        raise NotImplementedError

    async def run_pass(self) -> None:
        """One pass as the loop runs it: `reconcile()`, unless the controller's pass has to be awaited."""
        self.reconcile()

    def _on_event(self, event: Event) -> None:
        if self.wants(event):
            self.wake()

    async def _run(self) -> None:
        while True:
            if self.period > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.period):
                        await self._wake.wait()
            else:
                await self._wake.wait()
            self._wake.clear()
            try:
                await self.run_pass()
            except Exception:  # keep reconciling whatever one pass hit
                log.exception("%s: reconcile pass failed", self.name)
            # let the writes of this pass reach watchers before the next one starts
            await asyncio.sleep(0)

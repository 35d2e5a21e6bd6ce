"""What the collector's exporter helper gives the exporters that send over the network: a bounded
in-memory queue (`sending_queue`: `queue_size` batches, drained by `num_consumers` senders) so that the
pipeline does not wait on the network, and retries with exponential back-off (`retry_on_failure`: from
`initial_interval`, times `multiplier`, randomised by `randomization_factor`, at most `max_interval`
apart, given up after `max_elapsed_time`) of every failure that is not `Permanent`. A full queue drops
the batch with an error, as the collector does. At shutdown the senders finish what is queued.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import Message

from sim.telemetry.collector.config import ConfigError, Signal
from sim.telemetry.collector.settings import duration, number

log = logging.getLogger("otelcol.exporterhelper")

QUEUE_DEFAULTS = {"enabled": True, "num_consumers": 10, "queue_size": 1000, "storage": None}
RETRY_DEFAULTS = {
    "enabled": True,
    "initial_interval": "5s",
    "randomization_factor": 0.5,
    "multiplier": 1.5,
    "max_interval": "30s",
    "max_elapsed_time": "300s",
}
DRAIN_SECONDS = 5.0

Send = Callable[[Signal, Message], Awaitable[None]]


class Permanent(Exception):
    """A failure no retry can mend (the receiver refused the data as invalid)."""


class QueuedSender:
    def __init__(self, what: str, queue: dict[str, Any], retry: dict[str, Any], send: Send) -> None:
        self.what = what
        self.send = send
        self.queued = bool(queue["enabled"])
        if queue.get("storage"):
            raise ConfigError(f"{what}: sending_queue::storage is not implemented by the stand-in")
        self.consumers = int(number(f"{what}::sending_queue::num_consumers", queue["num_consumers"], low=1))
        size = int(number(f"{what}::sending_queue::queue_size", queue["queue_size"], low=1))
        self.queue: asyncio.Queue[tuple[Signal, Message]] = asyncio.Queue(size)
        self.retrying = bool(retry["enabled"])
        self.initial = duration(f"{what}::retry_on_failure::initial_interval", retry["initial_interval"])
        self.maximum = duration(f"{what}::retry_on_failure::max_interval", retry["max_interval"])
        self.elapsed = duration(f"{what}::retry_on_failure::max_elapsed_time", retry["max_elapsed_time"])
        self.multiplier = number(f"{what}::retry_on_failure::multiplier", retry["multiplier"], low=1)
        self.jitter = number(
            f"{what}::retry_on_failure::randomization_factor", retry["randomization_factor"], low=0
        )
        self._workers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.queued:
            self._workers = [asyncio.create_task(self._work()) for _ in range(self.consumers)]

    async def submit(self, signal: Signal, data: Message) -> None:
        if not self.queued:
            await self._deliver(signal, data)
            return
        try:
            self.queue.put_nowait((signal, data))
        except asyncio.QueueFull:
            raise RuntimeError(f"{self.what}: sending queue is full, data dropped") from None

    async def shutdown(self) -> None:
        if not self._workers:
            return
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                await self.queue.join()
        except TimeoutError:
            log.warning("%s: %d batches still queued at shutdown, dropped", self.what, self.queue.qsize())
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            signal, data = await self.queue.get()
            try:
                await self._deliver(signal, data)
            except Exception as err:  # noqa: BLE001 - logged and dropped, as the exporter helper does
                log.error("%s: exporting failed, data dropped: %s", self.what, err)
            finally:
                self.queue.task_done()

    async def _deliver(self, signal: Signal, data: Message) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.elapsed
        interval = self.initial
        while True:
            try:
                await self.send(signal, data)
                return
            except Permanent:
                raise
            except Exception as err:
                wait = interval * (1 + random.uniform(-self.jitter, self.jitter))
                if not self.retrying or (self.elapsed and loop.time() + wait > deadline):
                    raise
                log.info("%s: exporting failed, retrying in %.1fs: %s", self.what, wait, err)
                await asyncio.sleep(wait)
                interval = min(interval * self.multiplier, self.maximum)

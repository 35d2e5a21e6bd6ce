"""The `batch` processor: takes data at once and sends it on in batches, when `send_batch_size` items
(spans, data points, log records) have gathered or `timeout` has passed since the first of them, and
whatever it holds at shutdown. A batch the next consumer refuses or fails is dropped and logged, as the
collector does (the exporters behind it retry on their own)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from google.protobuf.message import Message

from sim.telemetry.collector import pdata
from sim.telemetry.collector.components import Component, Consumer, Factory, Host
from sim.telemetry.collector.config import SIGNALS, ComponentId, ConfigError, Signal
from sim.telemetry.collector.settings import ANY, duration, number

log = logging.getLogger("otelcol.batchprocessor")

DEFAULTS = {
    "timeout": "200ms",
    "send_batch_size": 8192,
    "send_batch_max_size": 0,
    "metadata_keys": ANY,
    "metadata_cardinality_limit": 1000,
}


def check(where: str, settings: dict[str, Any]) -> None:
    duration(f"{where}::timeout", settings["timeout"])
    number(f"{where}::send_batch_size", settings["send_batch_size"], low=0)
    if settings["send_batch_max_size"]:
        raise ConfigError(
            f"{where}: send_batch_max_size (splitting batches) is not implemented by the stand-in"
        )
    if settings["metadata_keys"]:
        raise ConfigError(
            f"{where}: metadata_keys (batching by client metadata) is not implemented by the stand-in"
        )


class BatchProcessor(Component, Consumer):
    def __init__(self, component: ComponentId, settings: dict[str, Any], following: Consumer) -> None:
        self.id = component
        self.timeout = duration("timeout", settings["timeout"])
        self.size = int(settings["send_batch_size"])
        self.following = following
        self._held: list[tuple[Signal, Message]] = []
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._sends: set[asyncio.Task[None]] = set()

    async def consume(self, signal: Signal, data: Message) -> None:
        self._held.append((signal, data))
        self._count += pdata.items(signal, data)
        if self.size and self._count >= self.size:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.timeout, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._held:
            return
        signal = self._held[0][0]
        batch = pdata.merge(signal, (data for _, data in self._held))
        self._held, self._count = [], 0
        task = asyncio.get_running_loop().create_task(self._send(signal, batch))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, signal: Signal, batch: Message) -> None:
        try:
            await self.following.consume(signal, batch)
        except Exception as err:  # noqa: BLE001 - the batch is lost, as in the collector; keep serving
            log.warning("processor %s: sending a batch of %s failed, dropped: %s", self.id, signal, err)

    async def shutdown(self) -> None:
        self._flush()
        if self._sends:
            await asyncio.wait(self._sends)


def _build(
    component: ComponentId, settings: dict[str, Any], host: Host, following: Mapping[Signal, Consumer]
) -> Component:
    return BatchProcessor(component, settings, next(iter(following.values())))


FACTORY = Factory("processors", "batch", DEFAULTS, frozenset(SIGNALS), _build, check)

"""The `memory_limiter` processor: every `check_interval` it measures the process's memory against a
limit (`limit_mib`, or `limit_percentage` of the memory there is: the cgroup's limit where one is set,
else the machine's); above the soft limit (the limit less the spike allowance) it refuses data, which the
receiver turns into a retryable 503 / UNAVAILABLE; above the hard limit it also collects garbage, as the
collector forces a GC. The collector measures its Go heap; the stand-in, its resident set.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from sim.telemetry.collector.components import Component, Consumer, Factory, Host, Refused
from sim.telemetry.collector.config import SIGNALS, ComponentId, ConfigError, Signal
from sim.telemetry.collector.settings import duration, number

log = logging.getLogger("otelcol.memorylimiter")

MIB = 1024 * 1024
DEFAULTS = {
    "check_interval": "0s",
    "limit_mib": 0,
    "spike_limit_mib": 0,
    "limit_percentage": 0,
    "spike_limit_percentage": 0,
}
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def total_memory() -> int:
    """The memory the process may use: its cgroup's limit, or the machine's memory."""
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < machine:
            return int(text)
    return machine


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def limits(where: str, settings: dict[str, Any], total: int) -> tuple[int, int]:
    """(hard limit, soft limit) in bytes, as the collector derives them; ConfigError when invalid."""
    if duration(f"{where}::check_interval", settings["check_interval"]) <= 0:
        raise ConfigError(f"{where}: check_interval must be greater than zero")
    limit_mib = number(f"{where}::limit_mib", settings["limit_mib"], low=0)
    percentage = number(f"{where}::limit_percentage", settings["limit_percentage"], low=0, high=100)
    spike_percentage = number(
        f"{where}::spike_limit_percentage", settings["spike_limit_percentage"], low=0, high=100
    )
    if limit_mib:
        hard = int(limit_mib * MIB)
        spike = int(number(f"{where}::spike_limit_mib", settings["spike_limit_mib"], low=0) * MIB)
        spike = spike or hard // 5
    elif percentage:
        hard = int(total * percentage / 100)
        spike = int(total * spike_percentage / 100)
    else:
        raise ConfigError(f"{where}: set limit_mib or limit_percentage")
    if spike >= hard:
        raise ConfigError(f"{where}: the spike limit must be less than the limit")
    return hard, hard - spike


class MemoryLimiter(Component, Consumer):
    def __init__(self, component: ComponentId, settings: dict[str, Any], following: Consumer) -> None:
        where = f"processors::{component}"
        self.interval = duration(f"{where}::check_interval", settings["check_interval"])
        self.hard, self.soft = limits(where, settings, total_memory())
        self.following = following
        self.refusing = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.check()
        self._task = asyncio.create_task(self._checking())

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def consume(self, signal: Signal, data: Message) -> None:
        if self.refusing:
            raise Refused("data refused due to high memory usage")
        await self.following.consume(signal, data)

    def check(self) -> None:
        used = resident_bytes()
        if used >= self.hard:
            gc.collect()
            used = resident_bytes()
        refusing = used >= self.soft
        if refusing != self.refusing:
            state = "above the soft limit: refusing data" if refusing else "below the soft limit again"
            log.warning("memory usage %d MiB %s (%d MiB)", used // MIB, state, self.soft // MIB)
        self.refusing = refusing

    async def _checking(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check()


def _build(
    component: ComponentId, settings: dict[str, Any], host: Host, following: Mapping[Signal, Consumer]
) -> Component:
    return MemoryLimiter(component, settings, next(iter(following.values())))


def _check(where: str, settings: dict[str, Any]) -> None:
    limits(where, settings, total_memory())


FACTORY = Factory("processors", "memory_limiter", DEFAULTS, frozenset(SIGNALS), _build, _check)

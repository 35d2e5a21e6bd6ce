"""The data plane's own health checks of registered targets (the emulator reports every target healthy).

One task per (target group, target): an HTTP GET of the group's health-check path every interval; the
target turns healthy after `healthy_threshold` consecutive successes (a new target after its first one)
and unhealthy after `unhealthy_threshold` consecutive failures, with ELBv2's reason codes and
descriptions. Times are the group's settings scaled by `time_scale` (the data plane's `--time-scale`: a
local cloud need not wait 15 s for a check; AWS's own times with 1), never below `min_interval`. A
refused connection seen by the proxy marks its target unhealthy at once, until checks pass again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from sim.alb.routing import HealthSettings, Target, TargetGroup

log = logging.getLogger(__name__)


@dataclass
class TargetHealth:
    state: str = "initial"  # initial, healthy, unhealthy
    reason: str = "Elb.RegistrationInProgress"  # ELBv2's reason code; "" when healthy
    description: str = "Target registration is in progress"
    successes: int = 0
    failures: int = 0

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"


class HealthChecker:
    def __init__(self, time_scale: float = 0.1, min_interval: float = 0.5) -> None:
        self.time_scale = time_scale
        self.min_interval = min_interval
        self.health: dict[tuple[str, Target], TargetHealth] = {}
        self._tasks: dict[tuple[str, Target], tuple[HealthSettings, asyncio.Task[None]]] = {}
        self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)

    def healthy(self, group_arn: str, target: Target) -> bool:
        found = self.health.get((group_arn, target))
        return found is not None and found.healthy

    def unhealthy(self, group_arn: str, target: Target) -> bool:
        """Whether `target` was checked and failed (not merely registering)."""
        found = self.health.get((group_arn, target))
        return found is not None and found.state == "unhealthy"

    def update(self, groups: Mapping[str, TargetGroup]) -> None:
        """Check exactly the targets registered in `groups` now."""
        wanted = {(arn, t): g.health for arn, g in groups.items() for t in g.targets}
        for key in list(self._tasks):
            settings, task = self._tasks[key]
            if wanted.get(key) != settings:
                task.cancel()
                del self._tasks[key]
                if key not in wanted:
                    self.health.pop(key, None)
        for key, settings in wanted.items():
            if key not in self._tasks:
                self.health.setdefault(key, TargetHealth())
                self._tasks[key] = (settings, asyncio.create_task(self._check_loop(key, settings)))

    def report_refused(self, group_arn: str, target: Target) -> None:
        found = self.health.get((group_arn, target))
        if found is not None:
            found.state, found.reason, found.successes = "unhealthy", "Target.FailedHealthChecks", 0
            found.description = "Health checks failed"

    async def close(self) -> None:
        for _, task in self._tasks.values():
            task.cancel()
        for _, task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._client.aclose()

    async def _check_loop(self, key: tuple[str, Target], settings: HealthSettings) -> None:
        interval = max(self.min_interval, settings.interval_seconds * self.time_scale)
        # the interval runs on the local clock, the timeout not below it: every target shares this
        # machine's cores, and a check that times out under load would take a serving target out
        timeout = min(float(settings.timeout_seconds), interval)
        target = key[1]
        port = target.port if settings.port == "traffic-port" else int(settings.port)
        url = f"http://{target.ip}:{port}{settings.path}"
        while True:
            try:
                response = await self._client.get(url, timeout=timeout)
                ok, reason = settings.success(response.status_code), "Target.ResponseCodeMismatch"
                description = f"Health checks failed with these codes: [{response.status_code}]"
            except httpx.TimeoutException:
                ok, reason, description = False, "Target.Timeout", "Request timed out"
            except httpx.HTTPError:
                ok, reason, description = False, "Target.FailedHealthChecks", "Health checks failed"
            self._record(key, settings, ok, reason, description)
            await asyncio.sleep(interval)

    def _record(
        self, key: tuple[str, Target], settings: HealthSettings, ok: bool, reason: str, description: str
    ) -> None:
        health = self.health.setdefault(key, TargetHealth())
        if ok:
            health.successes, health.failures = health.successes + 1, 0
            if health.state == "initial" or health.successes >= settings.healthy_threshold:
                if not health.healthy:
                    log.info("target %s of %s is healthy", key[1], key[0])
                health.state, health.reason, health.description = "healthy", "", ""
        else:
            health.failures, health.successes = health.failures + 1, 0
            if health.state == "initial" or health.failures >= settings.unhealthy_threshold:
                if health.healthy:
                    log.info("target %s of %s is unhealthy: %s", key[1], key[0], reason)
                health.state, health.reason, health.description = "unhealthy", reason, description

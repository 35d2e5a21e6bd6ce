"""Lame-duck draining: the stretch between "this pod is leaving" and SIGTERM.

Callers hold pooled keep-alive connections to a pod, and a Service's L4 proxy does not move an established
connection when the pod leaves its endpoints; a request sent on such a connection just as the server
closes it fails, and a POST is not retried. So before the kubelet sends SIGTERM, the pod's preStop hook
calls `GET /drain`. From then on `/readyz` fails, so the Service and the ALB send no new work, and every
response says `Connection: close`, so each caller closes its pooled connection itself, right after the
response, instead of reusing it. Every request, in flight or new, is still served as usual. The hook
returns after the drain's seconds, and SIGTERM then shuts down as it always did.

`draining` is a plain attribute read on every response. Only the event loop's thread writes it, and only
ever from False to True, so no lock is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class Drain:
    """Whether the service is draining, and the waits of the drain requests."""

    def __init__(self) -> None:
        self.draining = False
        self._stopping = asyncio.Event()

    def begin(self, cause: str) -> None:
        """Start draining (once: a later call changes nothing)."""
        if self.draining:
            return
        self.draining = True
        log.info("draining (%s): /readyz answers 503 and every response closes its connection", cause)

    async def hold(self, seconds: float) -> None:
        """Wait `seconds`, or less if the service starts stopping in the meantime."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    def stop(self) -> None:
        """The service is stopping (SIGTERM): drain requests return now, so that they do not hold up the
        graceful shutdown, and the responses still being sent close their connections."""
        self.begin("stopping")
        self._stopping.set()

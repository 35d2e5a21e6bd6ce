"""Serving until told to stop, for every server process of the project (each service's, in `serve`, and
the local cloud's, in `sim.serving`): an event that SIGTERM or SIGINT sets, for hypercorn's shutdown
trigger. The standard library only, so that the local cloud uses it without the services' runtime."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(on_signal: Callable[[], None] | None = None) -> asyncio.Event:
    """An event set when SIGTERM or SIGINT comes, right after `on_signal()` (when given) ran. Call it in
    the loop that serves: the handlers are that loop's."""
    stop = asyncio.Event()

    def stopping() -> None:
        if on_signal is not None:
            on_signal()
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stopping)
    return stop

"""Serving the local cloud's ASGI components (API server, telemetry receiver) until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

#: Longer than the idle timeout of Go's HTTP clients (kubectl: 90 s), so that a client never reuses a
#: keep-alive connection just as the server closes it (hypercorn's default is 5 s: kubectl's retries,
#: 5 s apart, then meet a reset).
KEEP_ALIVE_SECONDS = 120.0


def serve_until_signalled(app: Any, host: str, port: int, graceful_timeout: float) -> None:
    """Serve `app` on `host:port` with hypercorn; on a signal, finish in-flight requests and return."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = KEEP_ALIVE_SECONDS
    asyncio.run(_serve(app, config))


async def _serve(app: Any, config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)

"""The stand-in's listening sockets: an ASGI app served by hypercorn in the background, started once it
listens (or failed, with one line saying why) and stopped after its in-flight requests."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hypercorn.asyncio import serve

from sim.serving import hypercorn_config

GRACEFUL_TIMEOUT_SECONDS = 2.0
LISTEN_TIMEOUT_SECONDS = 10.0


class ListenError(Exception):
    """A server could not listen; the message names the address and why."""


class HttpServer:
    def __init__(self, app: Any, address: tuple[str, int], what: str) -> None:
        self.app = app
        self.address = address
        self.what = what
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        host, port = self.address
        config = hypercorn_config(GRACEFUL_TIMEOUT_SECONDS)
        config.bind = [f"{host}:{port}"]
        self._task = asyncio.create_task(serve(self.app, config, shutdown_trigger=self._stop.wait))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LISTEN_TIMEOUT_SECONDS
        while True:
            if self._task.done():
                error = self._task.exception()
                raise ListenError(f"{self.what} cannot listen on {host}:{port}: {error}")
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                if loop.time() > deadline:
                    raise ListenError(f"{self.what} did not listen on {host}:{port} in time") from None
                await asyncio.sleep(0.02)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

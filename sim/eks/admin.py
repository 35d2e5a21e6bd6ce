"""The binding's own HTTP endpoint: `GET /healthz` (alive) and `GET /clusters` (what `clusters.json`
holds), as a plain ASGI app; anything else is a 404."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class AdminApp:
    def __init__(self, clusters: Callable[[], dict[str, Any]]) -> None:
        self.clusters = clusters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method not in ("GET", "HEAD"):
            status, body = 405, {"error": f"{method} is not allowed"}
        elif path == "/healthz":
            status, body = 200, {"status": "ok"}
        elif path == "/clusters":
            status, body = 200, self.clusters()
        else:
            status, body = 404, {"error": f"no such path: {path}"}
        payload = json.dumps(body, sort_keys=True).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else payload})

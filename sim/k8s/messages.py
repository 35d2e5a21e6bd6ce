"""One HTTP exchange of the API as its routes see it: the ASGI types, the `Request` (its body read whole)
and the `Response` (sent whole); streamed answers (watches, logs, the proxy) write to `send` themselves."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import yaml

from sim.k8s import errors
from sim.k8s.errors import ApiError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Request:
    def __init__(self, scope: Scope, body: bytes) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: dict[str, str] = {
            k: v[0]
            for k, v in parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True).items()
        }
        self.headers: dict[str, str] = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        self.body = body

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true")

    def json(self) -> Any:
        if not self.body:
            return None
        ctype = self.headers.get("content-type", "application/json")
        if "protobuf" in ctype or "cbor" in ctype:
            raise ApiError(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}"
            )
        try:
            return json.loads(self.body)
        except ValueError:
            pass
        try:
            return yaml.safe_load(self.body)
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"the body of the request could not be decoded: {exc}") from exc

    @property
    def wants_table(self) -> bool:
        return "as=Table" in self.headers.get("accept", "")

    @property
    def manager(self) -> str:
        if self.query.get("fieldManager"):
            return self.query["fieldManager"]
        return self.headers.get("user-agent", "unknown").split("/", 1)[0] or "unknown"

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"


class Response:
    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or []

    @classmethod
    def json(cls, data: Any, status: int = 200, warnings: list[str] | None = None) -> Response:
        headers = [
            ("warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"') for w in warnings or []
        ]
        return cls(status, json.dumps(data, separators=(",", ":")).encode(), headers=headers)

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), "text/plain; charset=utf-8")

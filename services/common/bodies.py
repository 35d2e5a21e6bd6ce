"""Request bodies as the services read them: JSON only, UTF-8 only, and small.

Quart reads a body whatever its Content-Type claims (a form, no header at all), decodes it as UTF-8 with
an exception a service would answer with a 500, and takes up to 16 MiB. `JsonRequest` refuses each of
these with its own 4xx, so a service's JSON body is either read or refused with an error naming it.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

# The largest body a service reads (Quart's MAX_CONTENT_LENGTH): a cart line or a checkout form is < 2 KiB.
MAX_BODY_BYTES = 64 * 1024


class BodyRejected(BadRequest):
    """A body the service cannot read; `field` names what is wrong: `body` or a header."""

    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.field = field


class NotJson(BodyRejected, UnsupportedMediaType):
    """The body is not declared as JSON (HTTP 415)."""

    code = 415

    def __init__(self, content_type: str) -> None:
        declared = f"Content-Type {content_type}" if content_type else "no Content-Type"
        super().__init__(
            f"the body must be JSON (Content-Type: application/json), not {declared}", "Content-Type"
        )


class JsonRequest(Request):
    """A request whose `get_json` reads only declared, UTF-8, well-formed JSON."""

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        try:
            return await self._read_json(force, cache)
        except BodyRejected:
            if silent:
                return None
            raise

    async def _read_json(self, force: bool, cache: bool) -> Any:
        if not (force or self.is_json):
            raise NotJson(self.headers.get("Content-Type", ""))
        raw = await self.get_data(cache=cache, as_text=False, parse_form_data=False)
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise BodyRejected(f"the body is not valid UTF-8 (byte {err.start})") from None
        except ValueError as err:
            raise BodyRejected(f"the body is not valid JSON: {err}") from None

"""What an API object is here, for every module of the API: a plain dict shaped as the API returns it
(`Obj`), and the timestamps it carries (RFC 3339 in UTC, to the second)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> str:
    return datetime.now(UTC).strftime(TIMESTAMP_FORMAT)


def after(seconds: float) -> str:
    """The timestamp `seconds` from now."""
    return datetime.fromtimestamp(datetime.now(UTC).timestamp() + seconds, UTC).strftime(TIMESTAMP_FORMAT)

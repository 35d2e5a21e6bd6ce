"""The `Idempotency-Key` header: a caller's name for one attempt at an action (a checkout), so that the
attempt may be sent again (after a lost answer or a closed connection) and still take effect once."""

from __future__ import annotations

from uuid import uuid4

from pydantic import BaseModel, Field

IDEMPOTENCY_HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"


class IdempotencyHeaders(BaseModel):
    """The optional `Idempotency-Key` request header (quart-schema's `validate_headers` model)."""

    idempotency_key: str | None = Field(
        default=None,
        pattern=KEY_PATTERN,
        description="Names this attempt: a retry with the same key and body takes effect once",
        examples=["0b6d3c1e-4f1e-4d43-9d38-2f8f5f0c2a71"],
    )


def new_key() -> str:
    """A fresh key for a new attempt."""
    return str(uuid4())

"""A dependency the service cannot do without failed for now: the request is answered 503 with the reason
and a `Retry-After` (by `ServiceApp`), and the action changed nothing, so sending it again is safe."""

from __future__ import annotations


class Unavailable(Exception):
    """The request cannot be served now; it may be sent again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

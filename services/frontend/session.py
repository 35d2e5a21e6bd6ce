"""The shopper's session: an opaque random id in the `session_id` cookie, created on the first visit.

The id is the cart's user id, so it follows the cart service's rule (1..64 of A-Za-z0-9_-); a cookie
that breaks the rule is replaced rather than passed on. The cookie is HttpOnly and SameSite=Lax, so
page scripts cannot read it and other sites cannot post forms with it; it is Secure when the shopper
came in over HTTPS (as the edge reports in X-Forwarded-Proto).
"""

from __future__ import annotations

import uuid

from opentelemetry import trace
from quart import Response, g, request

from services.common.contracts import valid_user_id

COOKIE_NAME = "session_id"
MAX_AGE_SECONDS = 30 * 24 * 3600


def session_id() -> str:
    """This request's session id (read or newly made), recorded on the current span."""
    current: str | None = g.get("session_id")
    if current is None:
        cookie = request.cookies.get(COOKIE_NAME, "")
        g.new_session = not valid_user_id(cookie)
        current = str(uuid.uuid4()) if g.new_session else cookie
        g.session_id = current
        trace.get_current_span().set_attribute("app.session.id", current)
    return current


async def start_session() -> None:
    """A `before_request` hook: every storefront request belongs to a session."""
    session_id()


async def set_session_cookie(response: Response) -> Response:
    """An `after_request` hook: hand a new session's id to the browser."""
    if g.get("new_session"):
        forwarded_proto = request.headers.get("X-Forwarded-Proto", request.scheme)
        response.set_cookie(
            COOKIE_NAME,
            g.session_id,
            max_age=MAX_AGE_SECONDS,
            httponly=True,
            samesite="Lax",
            secure=forwarded_proto.split(",")[0].strip() == "https",
        )
    return response

"""API errors, raised by the model and turned into `Status` objects by the wire."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failed API call: HTTP code, Status reason and message, and optional details."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        name: str | None = None,
        group: str | None = None,
        kind: str | None = None,
        causes: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details: dict[str, Any] = {}
        if name is not None:
            self.details["name"] = name
        if group is not None:
            self.details["group"] = group
        if kind is not None:
            self.details["kind"] = kind
        if causes:
            self.details["causes"] = causes

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(group: str, plural: str, name: str) -> ApiError:
    what = f"{plural}.{group}" if group else plural
    return ApiError(404, "NotFound", f'{what} "{name}" not found', name=name, group=group, kind=plural)


def already_exists(group: str, plural: str, name: str) -> ApiError:
    what = f"{plural}.{group}" if group else plural
    return ApiError(
        409, "AlreadyExists", f'{what} "{name}" already exists', name=name, group=group, kind=plural
    )


def conflict(group: str, plural: str, name: str, why: str) -> ApiError:
    what = f"{plural}.{group}" if group else plural
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {what} "{name}": {why}',
        name=name,
        group=group,
        kind=plural,
    )


def invalid(kind: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    text = ", ".join(f"{c.get('field', '')}: {c.get('message', '')}" for c in causes)
    return ApiError(
        422, "Invalid", f'{kind} "{name}" is invalid: {text}', name=name, kind=kind, causes=causes
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)

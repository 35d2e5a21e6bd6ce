"""The OpenAPI document of a service (`/openapi.json`): what it accepts and every answer it gives.

quart_schema documents the request and success bodies of each route. `ServiceOpenAPI` adds the rest:
the 400 of any operation with a body, query or checked path parameter, the 413 and 415 of any operation
with a JSON body, and what a route declares with `answers` (a 404 for an unknown id, a 503 for a peer
that is down) or `no_content` (a 204). Path parameters declared as `<id:name>` are documented with the
id rule they are checked against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel
from quart_schema import document_response
from quart_schema.openapi import OpenAPIProvider
from werkzeug.routing import BaseConverter, Rule

from services.common.bodies import MAX_BODY_BYTES
from services.common.contracts import ID_PATTERN

F = TypeVar("F", bound=Callable[..., Any])

NO_CONTENT_ATTRIBUTE = "_shopstack_no_content"

INPUT_ERRORS = {
    400: "The request breaks the schema: `fields` names each bad field (`body` for an unreadable body)",
    413: f"The body is larger than the service reads ({MAX_BODY_BYTES} bytes)",
    415: "The body is not declared as JSON (Content-Type: application/json)",
}


class ErrorBody(BaseModel):
    """An error: what went wrong and, for bad input, the fields at fault."""

    error: str
    status: int
    fields: list[dict[str, str]] | None = None


class IdConverter(BaseConverter):
    """`<id:name>`: a path segment that must follow the id rule; the route answers 400 when it does not."""

    schema: ClassVar[dict[str, str]] = {"type": "string", "pattern": ID_PATTERN}


def no_content(func: F) -> F:
    """Document that a route answers 204 with no body (put it right under the route decorator)."""
    setattr(func, NO_CONTENT_ATTRIBUTE, True)
    return func


def answers(*status_codes: int) -> Callable[[F], F]:
    """Document that a route answers these statuses with an `ErrorBody`."""

    def decorator(func: F) -> F:
        for status_code in status_codes:
            func = document_response(ErrorBody, status_code)(func)
        return func

    return decorator


class ServiceOpenAPI(OpenAPIProvider):
    """quart_schema's document, with the checked path parameters and the input errors of every operation."""

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, IdConverter):
            parameter["schema"] = dict(IdConverter.schema)
        return parameter

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        error, error_components = self.build_response_object(ErrorBody, None)
        empty = getattr(self._app.view_functions[rule.endpoint], NO_CONTENT_ATTRIBUTE, False)
        for operations in paths.values():
            for operation in operations.values():
                if empty:
                    operation["responses"][204] = {"description": "Done: no body"}
                for status in _input_errors(operation):
                    operation["responses"].setdefault(status, {**error, "description": INPUT_ERRORS[status]})
        return paths, {**components, **error_components}


def _input_errors(operation: dict[str, Any]) -> list[int]:
    """The input errors an operation can answer: by its body, its query and its checked path parameters."""
    parameters = operation["parameters"]
    checked = any(p["in"] == "query" or "pattern" in p["schema"] for p in parameters)
    if "requestBody" in operation:
        return [400, 413, 415]
    return [400] if checked else []

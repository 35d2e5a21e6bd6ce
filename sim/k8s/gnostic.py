"""An OpenAPI v2 document in gnostic's protobuf encoding (`openapi.v2.Document`), which is how kubectl reads
`/openapi/v2`: it asks for `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and takes no
other answer (its fallback is the long-gone `/swagger-2.0.0.pb-v1`).

The protobuf wire format is written by hand for the messages an API server's document uses (field
numbers from gnostic's `OpenAPIv2.proto`), so that no protobuf runtime is needed. As in gnostic, vendor
extensions, defaults and enum values are `Any` messages holding their YAML text (JSON is YAML). A key this
encoder does not know is an error, never silently dropped.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from typing import Any

_VARINT, _FIXED64, _BYTES = 0, 1, 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _message(field: int, payload: bytes) -> bytes:
    return _tag(field, _BYTES) + _varint(len(payload)) + payload


def _string(field: int, text: str) -> bytes:
    return _message(field, text.encode()) if text else b""


def _strings(field: int, texts: Iterable[str]) -> bytes:
    return b"".join(_message(field, text.encode()) for text in texts)


def _bool(field: int, value: bool) -> bytes:
    return _tag(field, _VARINT) + b"\x01" if value else b""


def _int64(field: int, value: int) -> bytes:
    if value < 0:
        raise ValueError(f"a negative integer ({value}) is not encoded here")
    return _tag(field, _VARINT) + _varint(value)


def _double(field: int, value: float) -> bytes:
    return _tag(field, _FIXED64) + struct.pack("<d", value)


def _any(field: int, value: Any) -> bytes:
    """An `Any` holding `value` as YAML (field 2, `yaml`)."""
    return _message(field, _string(2, json.dumps(value, separators=(",", ":"))))


def _extensions(field: int, node: dict[str, Any]) -> bytes:
    """`NamedAny` entries for the `x-` keys of `node`."""
    return b"".join(
        _message(field, _string(1, key) + _any(2, value))
        for key, value in node.items()
        if key.startswith("x-")
    )


def _known(node: dict[str, Any], keys: Iterable[str], what: str) -> None:
    unknown = [k for k in node if k not in keys and not k.startswith("x-")]
    if unknown:
        raise ValueError(f"{what} with keys the encoder does not know: {unknown}")


_SCHEMA_FIELDS: dict[str, tuple[int, Callable[[int, Any], bytes]]] = {
    "$ref": (1, _string),
    "format": (2, _string),
    "title": (3, _string),
    "description": (4, _string),
    "default": (5, _any),
    "multipleOf": (6, _double),
    "maximum": (7, _double),
    "exclusiveMaximum": (8, _bool),
    "minimum": (9, _double),
    "exclusiveMinimum": (10, _bool),
    "maxLength": (11, _int64),
    "minLength": (12, _int64),
    "pattern": (13, _string),
    "maxItems": (14, _int64),
    "minItems": (15, _int64),
    "uniqueItems": (16, _bool),
    "maxProperties": (17, _int64),
    "minProperties": (18, _int64),
    "required": (19, _strings),
    "discriminator": (26, _string),
    "readOnly": (27, _bool),
    "example": (30, _any),
}


def schema(node: dict[str, Any]) -> bytes:
    """An `openapi.v2.Schema`."""
    out = []
    for key, value in node.items():
        if key in _SCHEMA_FIELDS:
            number, encode = _SCHEMA_FIELDS[key]
            out.append(encode(number, value))
        elif key == "enum":
            out.extend(_any(20, item) for item in value)
        elif key == "additionalProperties":  # AdditionalPropertiesItem: a schema or a boolean
            item = _message(1, schema(value)) if isinstance(value, dict) else _bool(2, value)
            out.append(_message(21, item))
        elif key == "type":  # TypeItem
            out.append(_message(22, _strings(1, [value] if isinstance(value, str) else value)))
        elif key == "items":  # ItemsItem
            items = value if isinstance(value, list) else [value]
            out.append(_message(23, b"".join(_message(1, schema(item)) for item in items)))
        elif key == "allOf":
            out.extend(_message(24, schema(item)) for item in value)
        elif key == "properties":  # Properties of NamedSchema
            named = (_message(1, _string(1, name) + _message(2, schema(sub))) for name, sub in value.items())
            out.append(_message(25, b"".join(named)))
        elif not key.startswith("x-"):
            raise ValueError(f"a schema key the encoder does not know: {key}")
    out.append(_extensions(31, node))
    return b"".join(out)


def _parameter(node: dict[str, Any]) -> bytes:
    """A `ParametersItem`: a `Parameter` (body, or query/path as a `NonBodyParameter`) or a reference."""
    if "$ref" in node:
        return _message(2, _string(1, node["$ref"]))
    where = node.get("in", "")
    if where == "body":
        _known(node, ("description", "name", "in", "required", "schema"), "a body parameter")
        body = (
            _string(1, node.get("description", ""))
            + _string(2, node["name"])
            + _string(3, where)
            + _bool(4, node.get("required", False))
            + _message(5, schema(node["schema"]))
            + _extensions(6, node)
        )
        return _message(1, _message(1, body))
    keys = ("required", "in", "description", "name", "type", "uniqueItems")
    _known(node, keys, f"a {where} parameter")
    common = (
        _bool(1, node.get("required", False))
        + _string(2, where)
        + _string(3, node.get("description", ""))
        + _string(4, node["name"])
    )
    if where == "query":  # QueryParameterSubSchema: type 6, uniqueItems 20, extensions 23
        sub = common + _string(6, node.get("type", "")) + _bool(20, node.get("uniqueItems", False))
        non_body = _message(3, sub + _extensions(23, node))
    elif where == "path":  # PathParameterSubSchema: type 5, uniqueItems 19, extensions 22
        sub = common + _string(5, node.get("type", "")) + _bool(19, node.get("uniqueItems", False))
        non_body = _message(4, sub + _extensions(22, node))
    else:
        raise ValueError(f"a parameter in {where!r} is not encoded here")
    return _message(1, _message(2, non_body))


def _responses(node: dict[str, Any]) -> bytes:
    """`Responses`: code -> `ResponseValue` holding a `Response` (description, schema)."""
    out = []
    for code, response in node.items():
        _known(response, ("description", "schema"), "a response")
        body = _string(1, response.get("description", ""))
        if "schema" in response:
            body += _message(2, _message(1, schema(response["schema"])))  # SchemaItem.schema
        out.append(_message(1, _string(1, code) + _message(2, _message(1, body + _extensions(5, response)))))
    return b"".join(out)


def _operation(node: dict[str, Any]) -> bytes:
    keys = (
        "tags",
        "description",
        "operationId",
        "produces",
        "consumes",
        "parameters",
        "responses",
        "schemes",
    )
    _known(node, keys, "an operation")
    return (
        _strings(1, node.get("tags", []))
        + _string(3, node.get("description", ""))
        + _string(5, node.get("operationId", ""))
        + _strings(6, node.get("produces", []))
        + _strings(7, node.get("consumes", []))
        + b"".join(_message(8, _parameter(p)) for p in node.get("parameters", []))
        + _message(9, _responses(node.get("responses", {})))
        + _strings(10, node.get("schemes", []))
        + _extensions(13, node)
    )


_PATH_ITEM_OPERATIONS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _path_item(node: dict[str, Any]) -> bytes:
    _known(node, (*_PATH_ITEM_OPERATIONS, "parameters"), "a path")
    out = [_message(n, _operation(node[verb])) for verb, n in _PATH_ITEM_OPERATIONS.items() if verb in node]
    out.extend(_message(9, _parameter(p)) for p in node.get("parameters", []))
    out.append(_extensions(10, node))
    return b"".join(out)


def document(doc: dict[str, Any]) -> bytes:
    """A whole `openapi.v2.Document`."""
    _known(doc, ("swagger", "info", "paths", "definitions"), "a document")
    info = doc.get("info", {})
    _known(info, ("title", "version", "description"), "the info")
    paths = b"".join(
        _message(2, _string(1, path) + _message(2, _path_item(item))) for path, item in doc["paths"].items()
    )
    definitions = b"".join(
        _message(1, _string(1, name) + _message(2, schema(node))) for name, node in doc["definitions"].items()
    )
    return (
        _string(1, doc["swagger"])
        + _message(
            2,
            _string(1, info.get("title", ""))
            + _string(2, info.get("version", ""))
            + _string(3, info.get("description", "")),
        )
        + _message(8, paths)
        + _message(9, definitions)
        + _extensions(16, doc)
    )

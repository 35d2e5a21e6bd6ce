"""The Kubernetes 1.30 OpenAPI documents of the served kinds: `/openapi/v2` (JSON, or gnostic's protobuf,
which is what kubectl reads) and `/openapi/v3` (a root naming each group-version's document by its hash).

The schemas are the 1.30 definitions that `kubernetes-validate` ships (its `_definitions.json`: the API
server's definitions made JSON Schema, with nullable types, `apiVersion` and `kind` enums, and `oneOf` for
int-or-string and quantities), turned back into what the API server serves: one type per schema, refs to
`#/definitions/` (v2) or `#/components/schemas/` (v3, where a ref with siblings is wrapped in `allOf` as
kube-openapi does). A document holds its kinds (with their `x-kubernetes-group-version-kind`, which
`kubectl explain` looks up), all they refer to, and the meta types its paths use.

kubectl reads these for more than explain. Before writing an object it looks in the group-version's v3
document for a PATCH operation tagged with the object's `x-kubernetes-group-version-kind` and a
`fieldValidation` parameter; finding one, it sends `fieldValidation=Strict` and leaves validation to us.
Client-side apply (and edit) computes its strategic-merge patch from the schema that PATCH operation's
request body names for `application/strategic-merge-patch+json`: the merge keys and strategies are the
real ones, so kubectl patches here as it does against a real API server.

Every document is built once, on first use, and served as bytes with an ETag.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sim.k8s import gnostic, resources
from sim.k8s.resources import KUBERNETES_VERSION, ResourceType
from sim.k8s.validation import SCHEMA_VERSION

JSON = "application/json"
PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
#: What the paths of every group-version refer to, besides its kinds.
PATH_TYPES = (f"{META}DeleteOptions", f"{META}Patch", f"{META}Status", f"{META}WatchEvent")
#: The subresources with a kind of their own: (group, version, kind).
SUBRESOURCE_KINDS = {"scale": ("autoscaling", "v1", "Scale"), "eviction": ("policy", "v1", "Eviction")}
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
#: Two types the JSON schemas spell as `oneOf`, as the API server serves them in v2 (a string) ...
V2_SPECIAL_TYPES: dict[str, dict[str, Any]] = {
    INT_OR_STRING: {
        "description": "IntOrString is a type that can hold an int32 or a string.  When used in JSON or "
        "YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to "
        "have, for example, a JSON field that can accept a name or number.",
        "format": "int-or-string",
        "type": "string",
    },
    QUANTITY: {
        "description": "Quantity is a fixed-point representation of a number. It provides convenient "
        "marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() accessors.",
        "type": "string",
    },
}
#: ... and in v3 (`oneOf`).
V3_SPECIAL_TYPES: dict[str, dict[str, Any]] = {
    INT_OR_STRING: {
        "description": V2_SPECIAL_TYPES[INT_OR_STRING]["description"],
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    },
    QUANTITY: {
        "description": V2_SPECIAL_TYPES[QUANTITY]["description"],
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
}
#: Query parameters of each action (besides `pretty`, on every path), and their types.
ACTION_PARAMETERS = {
    "get": (),
    "list": (
        "allowWatchBookmarks",
        "continue",
        "fieldSelector",
        "labelSelector",
        "limit",
        "resourceVersion",
        "resourceVersionMatch",
        "sendInitialEvents",
        "timeoutSeconds",
        "watch",
    ),
    "post": ("dryRun", "fieldManager", "fieldValidation"),
    "put": ("dryRun", "fieldManager", "fieldValidation"),
    "patch": ("dryRun", "fieldManager", "fieldValidation", "force"),
    "delete": ("dryRun", "gracePeriodSeconds", "propagationPolicy"),
    "deletecollection": (
        "dryRun",
        "gracePeriodSeconds",
        "labelSelector",
        "fieldSelector",
        "propagationPolicy",
    ),
}
PARAMETER_DESCRIPTIONS = {
    "pretty": "If 'true', then the output is pretty printed.",
    "fieldValidation": "how the server treats unknown fields: Ignore, Warn (the default) or Strict",
}
PARAMETER_TYPES = {
    "allowWatchBookmarks": "boolean",
    "force": "boolean",
    "sendInitialEvents": "boolean",
    "watch": "boolean",
    "limit": "integer",
    "timeoutSeconds": "integer",
    "gracePeriodSeconds": "integer",
}


@dataclass(frozen=True)
class Served:
    """A document as it goes on the wire."""

    body: bytes
    content_type: str
    etag: str


def _served(body: bytes, content_type: str = JSON) -> Served:
    return Served(body, content_type, hashlib.sha512(body).hexdigest()[:64].upper())


# -- the definitions


@functools.cache
def definitions() -> dict[str, Any]:
    """The 1.30 definitions, by name, as `/openapi/v2` serves them."""
    from kubernetes_validate import utils

    version = [v for v in utils.all_versions() if utils.major_minor(v) <= SCHEMA_VERSION][-1]
    source = utils.schema_contents(f"kubernetes-json-schema/v{version}-local/_definitions.json", version)
    out = {name: _openapi(node, top=True) for name, node in source["$defs"].items()}
    out.update(V2_SPECIAL_TYPES)
    return out


def _openapi(node: Any, top: bool = False) -> Any:
    """One JSON Schema node in the API server's OpenAPI v2 form."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, list):
            out[key] = next(t for t in value if t != "null")
        elif key == "$ref":
            out[key] = "#/definitions/" + value.removeprefix("#/$defs/")
        elif key == "properties":
            out[key] = {name: _openapi(_property(name, sub, top)) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _openapi(value)
        else:
            out[key] = value
    return out


def _property(name: str, node: dict[str, Any], top: bool) -> dict[str, Any]:
    """The JSON schemas give each kind's `apiVersion` and `kind` an enum, which the API server's have not."""
    if top and name in ("apiVersion", "kind"):
        return {k: v for k, v in node.items() if k != "enum"}
    return node


@functools.cache
def _by_gvk() -> dict[tuple[str, str, str], str]:
    index = {}
    for name, node in definitions().items():
        for gvk in node.get("x-kubernetes-group-version-kind") or []:
            index[(gvk["group"], gvk["version"], gvk["kind"])] = name
    return index


def definition_name(group: str, version: str, kind: str) -> str:
    """The definition of a kind (KeyError for a kind the 1.30 schemas do not have)."""
    return _by_gvk()[(group, version, kind)]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _closure(names: Iterable[str]) -> dict[str, Any]:
    """The named definitions and every definition they refer to, by name, sorted."""
    defs = definitions()
    found: dict[str, Any] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in found:
            found[name] = defs[name]
            todo.extend(_refs(defs[name]))
    return dict(sorted(found.items()))


# -- the paths


@dataclass(frozen=True)
class _Dialect:
    """What differs between a v2 and a v3 document's paths."""

    v3: bool

    def ref(self, name: str) -> dict[str, Any]:
        return {"$ref": ("#/components/schemas/" if self.v3 else "#/definitions/") + name}

    def parameter(self, name: str, where: str = "query", description: str = "") -> dict[str, Any]:
        kind = PARAMETER_TYPES.get(name, "string")
        description = description or PARAMETER_DESCRIPTIONS.get(name, name)
        out: dict[str, Any] = {"name": name, "in": where, "description": description}
        if where == "path":
            out["required"] = True
        if self.v3:
            out["schema"] = {"type": kind, "uniqueItems": True}
        else:
            out.update(type=kind, uniqueItems=True)
        return out

    def responses(self, schema: str, codes: Iterable[str]) -> dict[str, Any]:
        ok = {
            code: (
                {"description": "OK", "content": {JSON: {"schema": self.ref(schema)}}}
                if self.v3
                else {"description": "OK", "schema": self.ref(schema)}
            )
            for code in codes
        }
        return {**ok, "401": {"description": "Unauthorized"}}

    def body(self, schema: str, content_types: Iterable[str], operation: dict[str, Any]) -> None:
        """Give `operation` its request body."""
        if self.v3:
            content = {ctype: {"schema": self.ref(schema)} for ctype in content_types}
            operation["requestBody"] = {"content": content, "required": True}
        else:
            operation["consumes"] = list(content_types)
            body = {"name": "body", "in": "body", "required": True, "schema": self.ref(schema)}
            operation["parameters"].insert(0, body)


def _operation_id(verb: str, rt: ResourceType, suffix: str = "", collection: bool = False) -> str:
    group = rt.group.removesuffix(".k8s.io") or "core"
    words = "".join(w.capitalize() for w in group.split(".")) + rt.version.capitalize()
    scope = "Namespaced" if rt.namespaced else ""
    return f"{verb}{words}{scope}{rt.kind}{'Collection' if collection else ''}{suffix}"


def _paths(rt: ResourceType, dialect: _Dialect) -> dict[str, Any]:
    """The collection, item and subresource paths of one resource."""
    base = "/api/v1" if not rt.group else f"/apis/{rt.group}/{rt.version}"
    if rt.namespaced:
        base += "/namespaces/{namespace}"
    kind = definition_name(rt.group, rt.version, rt.kind)
    listed = definition_name(rt.group, rt.version, rt.kind + "List")
    status = f"{META}Status"

    def op(action: str, verb: str, gvk: tuple[str, str, str], response: str, codes: tuple[str, ...]) -> Any:
        return {
            "description": f"{action} {gvk[2]}",
            "operationId": verb,
            "parameters": [dialect.parameter(name) for name in ACTION_PARAMETERS[action]],
            "responses": dialect.responses(response, codes),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": dict(zip(("group", "version", "kind"), gvk, strict=True)),
        }

    def item(gvk: tuple[str, str, str], schema: str, suffix: str) -> dict[str, Any]:
        """The read, replace and patch operations of an item or its subresource."""
        out = {
            "get": op("get", _operation_id("read", rt, suffix), gvk, schema, ("200",)),
            "put": op("put", _operation_id("replace", rt, suffix), gvk, schema, ("200", "201")),
            "patch": op("patch", _operation_id("patch", rt, suffix), gvk, schema, ("200", "201")),
        }
        dialect.body(schema, (JSON,), out["put"])
        dialect.body(f"{META}Patch", PATCH_TYPES, out["patch"])
        return out

    own = (rt.group, rt.version, rt.kind)
    names = [dialect.parameter("pretty")]
    if rt.namespaced:
        names.insert(0, dialect.parameter("namespace", "path", "object name and auth scope"))
    collection: dict[str, Any] = {
        "get": op("list", _operation_id("list", rt), own, listed, ("200",)),
        "post": op("post", _operation_id("create", rt), own, kind, ("200", "201", "202")),
        "delete": op("deletecollection", _operation_id("delete", rt, collection=True), own, status, ("200",)),
        "parameters": names,
    }
    dialect.body(kind, (JSON,), collection["post"])
    single = item(own, kind, "")
    single["delete"] = op("delete", _operation_id("delete", rt), own, status, ("200", "202"))
    dialect.body(f"{META}DeleteOptions", (JSON,), single["delete"])
    with_name = [dialect.parameter("name", "path", f"name of the {rt.kind}"), *names]
    single["parameters"] = with_name
    out = {f"{base}/{rt.plural}": collection, f"{base}/{rt.plural}/{{name}}": single}
    if "status" in rt.subresources:
        out[f"{base}/{rt.plural}/{{name}}/status"] = {
            **item(own, kind, "Status"),
            "parameters": with_name,
        }
    if "scale" in rt.subresources:
        scale = SUBRESOURCE_KINDS["scale"]
        out[f"{base}/{rt.plural}/{{name}}/scale"] = {
            **item(scale, definition_name(*scale), "Scale"),
            "parameters": with_name,
        }
    if "eviction" in rt.subresources:
        eviction = SUBRESOURCE_KINDS["eviction"]
        evict = op(
            "post",
            _operation_id("create", rt, "Eviction"),
            eviction,
            definition_name(*eviction),
            ("200", "201", "202"),
        )
        dialect.body(definition_name(*eviction), (JSON,), evict)
        out[f"{base}/{rt.plural}/{{name}}/eviction"] = {"post": evict, "parameters": with_name}
    return out


def _review_paths(rt: ResourceType, dialect: _Dialect) -> dict[str, Any]:
    """A kind that is only created (`resources.REVIEW_TYPES`)."""
    kind = definition_name(rt.group, rt.version, rt.kind)
    create = {
        "description": f"create a {rt.kind}",
        "operationId": _operation_id("create", rt),
        "parameters": [dialect.parameter(name) for name in ACTION_PARAMETERS["post"]],
        "responses": dialect.responses(kind, ("200", "201", "202")),
        "x-kubernetes-action": "post",
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
    }
    dialect.body(kind, (JSON,), create)
    return {
        f"/apis/{rt.group}/{rt.version}/{rt.plural}": {
            "post": create,
            "parameters": [dialect.parameter("pretty")],
        }
    }


def _group_version(group: str, version: str, dialect: _Dialect) -> tuple[dict[str, Any], dict[str, Any]]:
    """The paths and the schemas of one group-version."""
    paths: dict[str, Any] = {}
    names = list(PATH_TYPES)
    for rt in resources.resources_in(group, version):
        paths.update(_paths(rt, dialect))
        names += [definition_name(rt.group, rt.version, rt.kind + suffix) for suffix in ("", "List")]
        names += [
            definition_name(*SUBRESOURCE_KINDS[sub]) for sub in rt.subresources if sub in SUBRESOURCE_KINDS
        ]
    for rt in resources.REVIEW_TYPES:
        if (rt.group, rt.version) == (group, version):
            paths.update(_review_paths(rt, dialect))
            names.append(definition_name(rt.group, rt.version, rt.kind))
    return paths, _closure(names)


def _group_versions() -> list[tuple[str, str]]:
    """Every group-version with a document: the served resources' and the reviews'."""
    out = [(group, version) for group, versions in resources.group_versions().items() for version in versions]
    return out + sorted({(rt.group, rt.version) for rt in resources.REVIEW_TYPES} - set(out))


# -- v2


@functools.cache
def v2_document() -> dict[str, Any]:
    dialect = _Dialect(v3=False)
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for group, version in _group_versions():
        gv_paths, gv_schemas = _group_version(group, version, dialect)
        paths.update(gv_paths)
        schemas.update(gv_schemas)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "definitions": dict(sorted(schemas.items())),
    }


@functools.cache
def v2_json() -> Served:
    return _served(json.dumps(v2_document(), separators=(",", ":")).encode())


@functools.cache
def v2_protobuf() -> Served:
    return _served(gnostic.document(v2_document()), PROTOBUF)


# -- v3


def _v3_schema(node: Any) -> Any:
    """A v2 schema node in v3 form: refs into `components`, a ref with siblings wrapped in `allOf`."""
    if isinstance(node, list):
        return [_v3_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = value.replace("#/definitions/", "#/components/schemas/")
        elif key == "properties":
            out[key] = {name: _v3_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "allOf"):
            out[key] = _v3_schema(value)
        else:
            out[key] = value
    if "$ref" in out and len(out) > 1:
        return {"allOf": [{"$ref": out.pop("$ref")}], **out}
    return out


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


@functools.cache
def v3_documents() -> dict[str, Served]:
    """Each served group-version's document, by its path under `/openapi/v3/`."""
    dialect = _Dialect(v3=True)
    out = {}
    for group, version in _group_versions():
        paths, schemas = _group_version(group, version, dialect)
        doc = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
            "paths": paths,
            "components": {
                "schemas": {
                    name: V3_SPECIAL_TYPES.get(name) or _v3_schema(node) for name, node in schemas.items()
                }
            },
        }
        out[_gv_path(group, version)] = _served(json.dumps(doc, separators=(",", ":")).encode())
    return out


@functools.cache
def v3_root() -> Served:
    paths = {
        gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={doc.etag}"} for gv, doc in v3_documents().items()
    }
    return _served(json.dumps({"paths": paths}).encode())

"""Minimal OpenAPI documents: enough for kubectl to see that the server validates fields itself.

kubectl 1.30 reads `/openapi/v3`, then the document of each group-version it writes to, looking for a
PATCH operation tagged with the object's `x-kubernetes-group-version-kind` and a `fieldValidation` query
parameter; finding one, it sends `fieldValidation=Strict` and leaves validation to us. The PATCH
operations carry no request body schema on purpose: kubectl then computes client-side apply patches
from its compiled-in types (the same patch metadata the real schemas give) instead of our documents.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sim.k8s import resources
from sim.k8s.resources import KUBERNETES_VERSION, ResourceType

_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _paths(rt: ResourceType, v3: bool) -> dict[str, Any]:
    base = "/" + _gv_path(rt.group, rt.version)
    if rt.namespaced:
        base += "/namespaces/{namespace}"
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}

    def param(name: str) -> dict[str, Any]:
        p: dict[str, Any] = {"name": name, "in": "query", "description": name}
        if v3:
            p["schema"] = {"type": "string", "uniqueItems": True}
        else:
            p["type"] = "string"
            p["uniqueItems"] = True
        return p

    def op(action: str, verb: str) -> dict[str, Any]:
        return {
            "operationId": f"{verb}{rt.kind}",
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [param(n) for n in _QUERY_PARAMS],
            "responses": {"200": {"description": "OK"}},
        }

    item = {
        "get": op("get", "read"),
        "put": op("put", "replace"),
        "patch": op("patch", "patch"),
        "delete": op("delete", "delete"),
    }
    collection = {"get": op("list", "list"), "post": op("post", "create")}
    return {f"{base}/{rt.plural}": collection, f"{base}/{rt.plural}/{{name}}": item}


def v3_document(group: str, version: str) -> dict[str, Any] | None:
    rts = resources.resources_in(group, version)
    if not rts:
        return None
    paths: dict[str, Any] = {}
    for rt in rts:
        paths.update(_paths(rt, v3=True))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _hash(group: str, version: str) -> str:
    text = json.dumps(v3_document(group, version), sort_keys=True)
    return hashlib.sha512(text.encode()).hexdigest()[:64].upper()


def v3_root() -> dict[str, Any]:
    paths = {}
    for group, versions in resources.group_versions().items():
        for version in versions:
            gv = _gv_path(group, version)
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={_hash(group, version)}"}
    return {"paths": paths}


def v2_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for rt in resources.RESOURCE_TYPES:
        paths.update(_paths(rt, v3=False))
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "definitions": {},
    }

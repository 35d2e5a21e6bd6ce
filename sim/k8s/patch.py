"""Patches: JSON merge (RFC 7386), JSON patch (RFC 6902, via `jsonpatch`), strategic merge, and the
field sets that server-side apply tracks per manager.

Strategic merge and apply need to know, for each list field, whether it is merged by a key and by which.
The real API server reads that from the Go types (`patchMergeKey`); we keep a small table for the list
fields our resources use. A list not in the table is atomic (replaced whole), which is also what the real
server does for lists without a merge key.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from sim.k8s.errors import ApiError, bad_request

#: List field name -> merge key, for the lists of our resources that merge by key (`patchMergeKey`).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "secrets": "name",  # ServiceAccount.secrets
}
#: Lists of scalars merged as sets (`patchStrategy: merge` on a []string).
SET_LISTS = frozenset({"finalizers"})


def merge_key(kind: str, path: tuple[str, ...]) -> str | None:
    """The merge key of the list at `path` (field names only) in an object of `kind`, or None if atomic."""
    name = path[-1]
    if name == "ports":
        # Service ports merge on `port`; container ports on `containerPort`.
        return "port" if kind == "Service" and path == ("spec", "ports") else "containerPort"
    return MERGE_KEYS.get(name)


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    if not isinstance(patch, list):
        raise bad_request("json patch must be a list of operations")
    try:
        result = jsonpatch.apply_patch(target, patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    except (TypeError, KeyError, ValueError) as exc:
        raise bad_request(f"invalid json patch: {exc}") from exc
    if not isinstance(result, dict):
        raise bad_request("json patch did not produce an object")
    return result


# ------------------------------------------------------------------------------------------ strategic merge


def strategic_merge(kind: str, original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Apply a strategic merge patch, honouring `$patch`, `$retainKeys`, `$setElementOrder/` and
    `$deleteFromPrimitiveList/` as kubectl sends them."""
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be an object")
    result: dict[str, Any] = _sm_map(kind, (), copy.deepcopy(original), patch)
    return result


def _sm_map(kind: str, path: tuple[str, ...], original: Any, patch: dict[str, Any]) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result: dict[str, Any] = dict(original) if isinstance(original, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [x for x in result[field] if x not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
            continue
        sub = (*path, key)
        if isinstance(value, dict):
            merged = _sm_map(kind, sub, result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _sm_list(kind, sub, result.get(key), value)
        else:
            result[key] = value
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _sm_list(kind: str, path: tuple[str, ...], original: Any, patch: list[Any]) -> list[Any]:
    current = list(original) if isinstance(original, list) else []
    if path[-1] in SET_LISTS:
        out = list(current)
        for item in patch:
            if item not in out:
                out.append(item)
        return out
    key = merge_key(kind, path)
    if key is None:
        return copy.deepcopy([x for x in patch if not (isinstance(x, dict) and "$patch" in x)])
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return copy.deepcopy([x for x in patch if not (isinstance(x, dict) and "$patch" in x)])
    out = list(current)
    for item in patch:
        if not isinstance(item, dict):
            out.append(copy.deepcopy(item))
            continue
        ident = item.get(key)
        index = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == ident), None)
        if item.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
            continue
        if index is None:
            out.append(_sm_map(kind, path, {}, item))
        else:
            out[index] = _sm_map(kind, path, out[index], item)
    return out


# ------------------------------------------------------------------------------------------ apply field sets

#: Metadata fields the server owns: never part of a manager's field set.
SERVER_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    }
)

Path = tuple[str, ...]


def _key_element(key: str, value: Any) -> str:
    return "k:" + json.dumps({key: value}, separators=(",", ":"))


def field_paths(kind: str, obj: dict[str, Any], *, include_status: bool = False) -> dict[Path, Any]:
    """The leaf fields of `obj` as fieldsV1-style paths (`f:spec`, `k:{"name":"app"}`, `v:"x"`) -> value.

    Keyed list items also appear as their own path (the `.` entry of fieldsV1), so that a manager owns the
    item it listed and an apply that drops it removes it.
    """
    out: dict[Path, Any] = {}

    def walk(node: Any, fpath: tuple[str, ...], ppath: Path) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                if not fpath and k in ("apiVersion", "kind"):
                    continue
                if not fpath and k == "status" and not include_status:
                    continue
                if fpath == ("metadata",) and k in SERVER_METADATA:
                    continue
                walk(v, (*fpath, k), (*ppath, "f:" + k))
            return
        if isinstance(node, list) and node and fpath:
            if fpath[-1] in SET_LISTS:
                for item in node:
                    out[(*ppath, "v:" + json.dumps(item))] = item
                return
            key = merge_key(kind, fpath)
            if key is not None and all(isinstance(x, dict) and key in x for x in node):
                for item in node:
                    ipath = (*ppath, _key_element(key, item[key]))
                    out[ipath] = {key: item[key]}
                    walk({k: v for k, v in item.items()}, fpath, ipath)
                return
        out[ppath] = node

    walk(obj, (), ())
    return out


def fields_v1(paths: set[Path] | dict[Path, Any]) -> dict[str, Any]:
    """Nested fieldsV1 form of a set of paths."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(element, {})
        if path and path[-1].startswith("k:"):
            node.setdefault(".", {})
    return root


def paths_from_fields_v1(tree: dict[str, Any]) -> set[Path]:
    out: set[Path] = set()

    def walk(node: dict[str, Any], prefix: Path) -> None:
        children = {k: v for k, v in node.items() if k != "."}
        if ("." in node or not children) and prefix:
            out.add(prefix)
        for k, v in children.items():
            walk(v if isinstance(v, dict) else {}, (*prefix, k))

    walk(tree, ())
    return out


def _locate(obj: Any, element: str) -> tuple[Any, Any]:
    """Child of `obj` named by one path element; returns (container_key_or_index, child) or (None, None)."""
    if element.startswith("f:") and isinstance(obj, dict):
        name = element[2:]
        return (name, obj[name]) if name in obj else (None, None)
    if element.startswith("k:") and isinstance(obj, list):
        want = json.loads(element[2:])
        for i, item in enumerate(obj):
            if isinstance(item, dict) and all(item.get(k) == v for k, v in want.items()):
                return i, item
        return None, None
    if element.startswith("v:") and isinstance(obj, list):
        value = json.loads(element[2:])
        for i, item in enumerate(obj):
            if item == value:
                return i, item
    return None, None


def value_at(obj: Any, path: Path) -> Any:
    node = obj
    for element in path:
        ref, node = _locate(node, element)
        if ref is None:
            return None
    return node


def remove_path(obj: Any, path: Path) -> None:
    """Remove the field or list item at `path` if present; empty maps left behind are kept, as upstream."""
    node = obj
    for element in path[:-1]:
        ref, node = _locate(node, element)
        if ref is None:
            return
    ref, _ = _locate(node, path[-1])
    if ref is not None:
        del node[ref]


def apply_merge(kind: str, current: dict[str, Any], applied: dict[str, Any]) -> dict[str, Any]:
    """Merge an applied configuration into the live object: maps merge, keyed lists merge by key, set
    lists union, other lists are replaced."""
    return _ap_map(kind, (), copy.deepcopy(current), applied)


def _ap_map(kind: str, path: tuple[str, ...], current: Any, applied: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    for key, value in applied.items():
        sub = (*path, key)
        if isinstance(value, dict):
            result[key] = _ap_map(kind, sub, result.get(key), value)
        elif isinstance(value, list):
            result[key] = _ap_list(kind, sub, result.get(key), value)
        elif value is None:
            result.pop(key, None)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _ap_list(kind: str, path: tuple[str, ...], current: Any, applied: list[Any]) -> list[Any]:
    live = list(current) if isinstance(current, list) else []
    if path[-1] in SET_LISTS:
        return live + [x for x in applied if x not in live]
    key = merge_key(kind, path)
    if key is None or not all(isinstance(x, dict) and key in x for x in applied):
        return copy.deepcopy(applied)
    out = list(live)
    for item in applied:
        index = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == item[key]), None)
        if index is None:
            out.append(copy.deepcopy(item))
        else:
            out[index] = _ap_map(kind, path, out[index], item)
    return out

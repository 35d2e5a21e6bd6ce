"""Field managers: who set which field of an object (`metadata.managedFields`), and server-side apply.

Every write names a manager (`fieldManager`, else the client's user agent). An update moves the fields it
changed to its manager (operation `Update`, per subresource); an apply (operation `Apply`) merges the
applied configuration in, owns exactly the fields it lists, removes the fields this manager applied before
and no longer lists (unless another manager owns them too), and is a 409 conflict when it would change a
field another manager owns, unless forced (then the field changes hands). The field sets are those of
`patch` (fieldsV1 paths, keyed list items included).

The functions here compute objects and field sets only; the store writes them (`Store.apply`, and every
create and update that names a manager).
"""

from __future__ import annotations

import copy
from typing import Any

from sim.k8s import errors, patch
from sim.k8s.errors import ApiError
from sim.k8s.objects import Obj, now
from sim.k8s.resources import ResourceType

#: One manager's entry, as worked on: `paths` is its field set.
Entry = dict[str, Any]


def entries(obj: Obj) -> list[Entry]:
    """The field managers of `obj`, with their field sets."""
    out = []
    for entry in obj["metadata"].get("managedFields") or []:
        out.append(
            {
                "manager": entry.get("manager", ""),
                "operation": entry.get("operation", "Update"),
                "apiVersion": entry.get("apiVersion", ""),
                "time": entry.get("time", now()),
                "subresource": entry.get("subresource"),
                "paths": patch.paths_from_fields_v1(entry.get("fieldsV1") or {}),
            }
        )
    return out


def render(managers: list[Entry]) -> list[Obj]:
    """`metadata.managedFields` for `managers`."""
    out = []
    for entry in managers:
        item: Obj = {
            "manager": entry["manager"],
            "operation": entry["operation"],
            "apiVersion": entry.get("apiVersion", ""),
            "time": entry.get("time") or now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": patch.fields_v1(entry["paths"]),
        }
        if entry.get("subresource"):
            item["subresource"] = entry["subresource"]
        out.append(item)
    return out


def record_update(rt: ResourceType, old: Obj | None, new: Obj, manager: str, subresource: str | None) -> None:
    """Set `new`'s managedFields: the fields this write changed from `old` (None: a create) move to
    `manager` (operation Update)."""
    include_status = subresource == "status"
    new_paths = patch.field_paths(rt.kind, new, include_status=include_status)
    old_paths = patch.field_paths(rt.kind, old, include_status=include_status) if old else {}
    missing = object()
    changed = {p for p, v in new_paths.items() if old_paths.get(p, missing) != v}
    removed = set(old_paths) - set(new_paths)
    managers = entries(old) if old else []
    if not changed and not removed:
        new["metadata"]["managedFields"] = render(managers)
        return
    kept: list[Entry] = []
    mine: Entry | None = None
    for entry in managers:
        entry["paths"] -= removed
        if (
            entry["manager"] == manager
            and entry["operation"] == "Update"
            and entry["subresource"] == subresource
        ):
            mine = entry
            continue
        entry["paths"] -= changed
        if entry["paths"]:
            kept.append(entry)
    if mine is None:
        mine = {"manager": manager, "operation": "Update", "subresource": subresource, "paths": set()}
    mine["paths"] |= changed
    mine["apiVersion"] = rt.api_version
    mine["time"] = now()
    if mine["paths"]:
        kept.append(mine)
    new["metadata"]["managedFields"] = render(kept)


def check_apply(rt: ResourceType, name: str, body: Any, manager: str) -> Obj:
    """The applied configuration `body`, once it is one an apply may take (400 otherwise)."""
    if not isinstance(body, dict):
        raise errors.bad_request("apply patch must be an object")
    if not manager:
        raise errors.bad_request("PATCH requests with apply content type must have a fieldManager")
    if body.get("kind") not in (None, rt.kind) or body.get("apiVersion") not in (None, rt.api_version):
        raise errors.bad_request(
            f"apply for {rt.kind} given {body.get('apiVersion')}, Kind={body.get('kind')}"
        )
    meta = body.get("metadata") or {}
    if meta.get("name") not in (None, name):
        raise errors.bad_request("the name of the object does not match the name on the URL")
    return body


def applied_new(rt: ResourceType, name: str, body: Obj, manager: str) -> Obj:
    """The object an apply creates: `body`, named, owned whole by `manager`."""
    created = copy.deepcopy(body)
    created.setdefault("metadata", {})["name"] = name
    paths = set(patch.field_paths(rt.kind, body))
    created["metadata"]["managedFields"] = render(
        [
            {
                "manager": manager,
                "operation": "Apply",
                "apiVersion": rt.api_version,
                "time": now(),
                "paths": paths,
            }
        ]
    )
    return created


def apply(
    rt: ResourceType,
    current: Obj,
    body: Obj,
    manager: str,
    *,
    subresource: str | None = None,
    force: bool = False,
) -> tuple[Obj, list[Obj]]:
    """Apply `body` (checked by `check_apply`) to `current` as `manager`: the merged object (at
    `current`'s resourceVersion) and its managedFields. Raises the 409 conflict unless `force`."""
    include_status = subresource == "status"
    applied = patch.field_paths(rt.kind, body, include_status=include_status)
    entry_time = now()
    managers = entries(current)
    conflicts: list[tuple[str, patch.Path]] = []
    mine: Entry | None = None
    for entry in managers:
        if (
            entry["manager"] == manager
            and entry["operation"] == "Apply"
            and entry["subresource"] == subresource
        ):
            mine = entry
            continue
        if entry["subresource"] != subresource:
            continue
        for path in set(applied) & entry["paths"]:
            if path[-1].startswith("k:"):
                continue
            if patch.value_at(current, path) != applied[path]:
                conflicts.append((entry["manager"], path))
    if conflicts and not force:
        raise _conflict(rt, current["metadata"]["name"], conflicts)
    taken = {path for _, path in conflicts}
    others: set[patch.Path] = set()
    for entry in managers:
        if entry is not mine:
            entry["paths"] -= taken
            if entry["subresource"] == subresource:
                others |= entry["paths"]
    stripped = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
    stripped["metadata"] = {
        k: v for k, v in (stripped.get("metadata") or {}).items() if k not in patch.SERVER_METADATA
    }
    if not include_status:
        stripped.pop("status", None)
    merged = patch.apply_merge(rt.kind, current, stripped)
    if mine is not None:
        dropped: list[patch.Path] = []
        for path in sorted(mine["paths"] - set(applied) - others, key=len):
            if any(path[: len(d)] == d for d in dropped):
                continue  # its ancestor is gone already
            patch.remove_path(merged, path)
            dropped.append(path)
            parent = path[:-1]
            while parent and patch.value_at(merged, parent) in ([], {}) and parent not in others:
                patch.remove_path(merged, parent)  # no empty list or map left behind
                parent = parent[:-1]
    if mine is None:
        mine = {"manager": manager, "operation": "Apply", "subresource": subresource}
    if mine.get("paths") != set(applied) or not mine.get("time"):
        mine["time"] = entry_time  # an unchanged apply keeps its time, so it stays a no-op
    mine.update({"paths": set(applied), "apiVersion": rt.api_version})
    kept = [e for e in managers if e is not mine and e["paths"]] + [mine]
    kept.sort(key=lambda e: (e["operation"] != "Apply", e["manager"]))
    merged["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    return merged, render(kept)


def _conflict(rt: ResourceType, name: str, conflicts: list[tuple[str, patch.Path]]) -> ApiError:
    """The 409 of an apply that would take fields other managers own, worded as kube-apiserver words it."""
    causes = [
        {
            "type": "FieldManagerConflict",
            "message": f'conflict with "{who}" using {rt.api_version}',
            "field": _dotted(path),
        }
        for who, path in sorted(conflicts)
    ]
    if len(causes) == 1:
        text = f"Apply failed with 1 conflict: {causes[0]['message']}: {causes[0]['field']}"
    else:
        by_manager: dict[str, list[str]] = {}
        for who, path in sorted(conflicts):
            by_manager.setdefault(who, []).append(_dotted(path))
        text = f"Apply failed with {len(causes)} conflicts: " + "\n".join(
            f'conflicts with "{who}" using {rt.api_version}:\n' + "\n".join(f"- {f}" for f in fields)
            for who, fields in by_manager.items()
        )
    return ApiError(409, "Conflict", text, name=name, group=rt.group, kind=rt.plural, causes=causes)


def _dotted(path: patch.Path) -> str:
    out = ""
    for element in path:
        if element.startswith("f:"):
            out += "." + element[2:]
        else:
            out += "[" + element[2:] + "]"
    return out

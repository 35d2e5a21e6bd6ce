"""Server-side apply and prune of the rendered objects, as pyinfra operations.

`apply` compares each rendered object with its live copy (`LiveObjects`) and yields one server-side
apply (field manager `shopstack-deploy`, forced) per object that is missing or differs; objects that
match yield nothing, so a second run reports no change and writes nothing. "Differs" means some field the
rendered object sets has another value live: dicts by key, lists elementwise with equal length, resource
quantities by value ("1000m" is "1"), ints and strings by their text. A Deployment an HPA of the same
list targets gets `spec.replicas` at creation only: the HPA owns it after, so it is neither compared nor
sent again. Leaving it out of an apply would remove the field the deploy's field manager set at creation,
which puts the Deployment back to its default of one replica (server-side apply's "transferring
ownership" pitfall: a rolling update under load would lose all but one pod). So each such update first
hands the field over, as Kubernetes' documentation does: an apply of `spec.replicas` alone, at its live
value, by a field manager of its own, keeps the field when the deploy's manager lets it go. A field the
model stops setting is not seen as a difference by itself; the next apply of that object (for any other
change) removes it, as server-side apply does for its field manager. Except a Service's selector, which is
compared whole: a key left in it would keep selecting the pods of a colour that is going away.

`prune` deletes live objects that carry the deploy's prune label and are no longer rendered, in reverse
dependency order; objects without the label are never touched.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Generator
from decimal import Decimal
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType
from pyinfra.api.command import FunctionCommand
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State
from pyinfra.context import host

from infra.cloud import cloud_of
from infra.k8s.access import FIELD_MANAGER
from infra.k8s.facts import LiveObjects, object_key, resource_class
from kube.apply_order import apply_rank
from kube.quantity import parse_quantity

Obj = dict[str, Any]
log = logging.getLogger("pyinfra")

#: fields whose values the API server keeps as quantities ("500m", "1Gi")
QUANTITY_KEYS = frozenset({"requests", "limits", "hard", "capacity", "allocatable", "sizeLimit"})
REPORTED_FIELDS = 4
#: the field manager that holds an HPA-scaled Deployment's `spec.replicas` for the deploy's applies
REPLICAS_MANAGER = "shopstack-deploy-replicas"


class DescribedCommand(FunctionCommand):
    """A FunctionCommand that shows as what it does ("create Deployment shopstack/cart")."""

    def __init__(self, description: str, function: Any, args: tuple[Any, ...]) -> None:
        super().__init__(function, args, {})
        self.description = description

    def __repr__(self) -> str:
        return self.description

    def __str__(self) -> str:
        return self.description


def describe(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{obj['kind']} {namespace + '/' if namespace else ''}{meta['name']}"


def hpa_targets(objects: list[Obj]) -> set[tuple[str, str]]:
    """(namespace, name) of every Deployment an HPA in `objects` scales."""
    targets = set()
    for obj in objects:
        if obj.get("kind") == "HorizontalPodAutoscaler":
            ref = (obj.get("spec") or {}).get("scaleTargetRef") or {}
            if ref.get("kind") == "Deployment":
                targets.add((str(obj["metadata"].get("namespace") or ""), str(ref.get("name"))))
    return targets


def _quantity(value: Any) -> Decimal | None:
    try:
        return parse_quantity(value)
    except ValueError:
        return None


def _same_scalar(desired: Any, live: Any, key: str, in_quantities: bool) -> bool:
    if desired == live and type(desired) is type(live):
        return True
    if isinstance(desired, bool) or isinstance(live, bool):
        return False
    if not isinstance(desired, (str, int, float)) or not isinstance(live, (str, int, float)):
        return False
    if in_quantities or key in QUANTITY_KEYS:
        wanted, found = _quantity(desired), _quantity(live)
        if wanted is not None and wanted == found:
            return True
    return str(desired) == str(live)


def differences(desired: Any, live: Any, path: str = "", in_quantities: bool = False) -> list[str]:
    """The paths of fields `desired` sets that `live` does not hold (empty: they match)."""
    key = path.rsplit(".", 1)[-1]
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [path]
        found: list[str] = []
        for name, value in desired.items():
            sub = f"{path}.{name}" if path else str(name)
            if name not in live:
                if value not in (None, {}, []):
                    found.append(sub)
                continue
            found += differences(value, live[name], sub, in_quantities or name in QUANTITY_KEYS)
        return found
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return [path]
        return [
            d
            for i, (a, b) in enumerate(zip(desired, live, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    if desired is None:
        return [] if live in (None, {}, []) else [path]
    return [] if _same_scalar(desired, live, key, in_quantities) else [path]


def _whole_map_differences(desired: Obj, live: Obj) -> list[str]:
    """The maps whose every key is meaning, compared whole: a Service's selector with a key the model
    no longer sets selects other pods (a colour's only), so that key's removal is a change to apply."""
    if desired["kind"] != "Service":
        return []
    wanted = (desired.get("spec") or {}).get("selector")
    held = (live.get("spec") or {}).get("selector")
    return ["spec.selector"] if wanted is not None and held is not None and set(held) - set(wanted) else []


def _without_replicas(obj: Obj) -> Obj:
    body = copy.deepcopy(obj)
    body.get("spec", {}).pop("replicas", None)
    return body


def _hand_replicas_over(state: State, host: Host, body: Obj, description: str) -> bool | None:
    """Keep a Deployment's live `spec.replicas` owned by `REPLICAS_MANAGER`, so that an apply without the
    field does not reset it (see the module's docstring)."""
    meta = body["metadata"]
    try:
        live = _client(host, description).get(
            resource_class(body["apiVersion"], body["kind"]), meta["name"], namespace=meta.get("namespace")
        )
    except ApiError as err:
        host.log_styled(f"{description} failed: {err.status.message}", fg="red", log_func=log.error)
        return False
    held = {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "metadata": {key: meta[key] for key in ("name", "namespace") if key in meta},
        "spec": {"replicas": live.spec.replicas},  # type: ignore[attr-defined]
    }
    return _server_side_apply(state, host, held, description, REPLICAS_MANAGER)


def _client(host: Host, description: str) -> Any:
    client = cloud_of(host).kube()
    if client is None:
        raise RuntimeError(f"{description}: the cluster does not exist")
    return client


def _server_side_apply(
    state: State, host: Host, body: Obj, description: str, field_manager: str = FIELD_MANAGER
) -> bool | None:
    meta = body["metadata"]
    try:
        _client(host, description).patch(
            resource_class(body["apiVersion"], body["kind"]),
            meta["name"],
            body,
            namespace=meta.get("namespace"),
            patch_type=PatchType.APPLY,
            field_manager=field_manager,
            force=True,
        )
    except ApiError as err:
        host.log_styled(f"{description} failed: {err.status.message}", fg="red", log_func=log.error)
        return False
    return None


def _delete(state: State, host: Host, obj: Obj, description: str) -> bool | None:
    client = cloud_of(host).kube()
    if client is None:
        return None
    meta = obj["metadata"]
    try:
        client.delete(
            resource_class(obj["apiVersion"], obj["kind"]), meta["name"], namespace=meta.get("namespace")
        )
    except ApiError as err:
        if err.status.code == 404:
            return None  # already gone: what prune wants
        host.log_styled(f"{description} failed: {err.status.message}", fg="red", log_func=log.error)
        return False
    return None


def kinds_of(objects: list[Obj]) -> list[list[str]]:
    return sorted({(str(o["apiVersion"]), str(o["kind"])) for o in objects})  # type: ignore[misc]


def planned_changes(objects: list[Obj], live: dict[str, Obj]) -> list[tuple[str, Obj]]:
    """(description, body to apply) of each object that is missing or differs, in dependency order."""
    scaled_by_hpa = hpa_targets(objects)
    changes = []
    for obj in sorted(objects, key=apply_rank):
        current = live.get(object_key(obj))
        meta = obj["metadata"]
        target = (meta.get("namespace") or "", meta["name"])
        if current is None:
            changes.append((f"create {describe(obj)}", obj))
            continue
        hpa_owns_replicas = obj["kind"] == "Deployment" and target in scaled_by_hpa
        body = _without_replicas(obj) if hpa_owns_replicas else obj
        changed = differences(body, current) or _whole_map_differences(body, current)
        if changed:
            shown = ", ".join(changed[:REPORTED_FIELDS])
            more = f" (+{len(changed) - REPORTED_FIELDS} more)" if len(changed) > REPORTED_FIELDS else ""
            changes.append((f"update {describe(obj)}: {shown}{more}", body))
    return changes


@operation()
def apply(objects: list[Obj], after: list[Obj] | None = None) -> Generator[FunctionCommand, None, None]:
    """Server-side apply every object of `objects` that is missing or differs from its live copy.

    `after`: the objects an earlier apply of the same run makes live (a release's phases): `objects` are
    compared with those instead of what the cluster holds when the run is planned, so each phase applies,
    and `--dry` shows, only its own changes."""
    live = host.get_fact(LiveObjects, kinds=kinds_of(objects))
    if after is not None:
        live = {**live, **{object_key(obj): obj for obj in after}}
    changes = planned_changes(objects, live)
    if not changes:
        host.noop(f"{len(objects)} Kubernetes objects are as declared")
        return
    # all at once: pyinfra's change detection (--dry) stops at an operation's first command
    for description, _ in changes:
        host.log_styled(description, fg="yellow", log_func=log.info)
    for description, body in changes:
        if object_key(body) in live and body["kind"] == "Deployment" and "replicas" not in body["spec"]:
            handover = f"hand the replicas of {describe(body)} over to its HPA"
            yield DescribedCommand(handover, _hand_replicas_over, (body, handover))
        yield DescribedCommand(description, _server_side_apply, (body, description))


@operation()
def prune(objects: list[Obj], kinds: list[list[str]]) -> Generator[FunctionCommand, None, None]:
    """Delete the deploy's live objects of `kinds` ([apiVersion, kind] pairs) that `objects` no longer
    declares, dependents first."""
    declared = {object_key(obj) for obj in objects}
    live = host.get_fact(LiveObjects, kinds=[list(k) for k in kinds])
    stale = [obj for key, obj in live.items() if key not in declared]
    if not stale:
        host.noop("no undeclared Kubernetes objects")
        return
    ordered = sorted(stale, key=apply_rank, reverse=True)
    for obj in ordered:
        host.log_styled(f"delete {describe(obj)}", fg="yellow", log_func=log.info)
    for obj in ordered:
        yield DescribedCommand(f"delete {describe(obj)}", _delete, (obj, f"delete {describe(obj)}"))

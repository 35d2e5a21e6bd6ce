"""What the workload controllers (ReplicaSet, Deployment, StatefulSet) share: owner references, pods made
from a template, pod readiness and availability (`minReadySeconds`), the template hash, the ordering of
pods to delete first, and condition bookkeeping that leaves a status alone when nothing changed (so a
pass that changes nothing writes nothing and the loops settle)."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sim.k8s import resources
from sim.k8s.selectors import LabelSelector
from sim.k8s.store import Obj, now

PODS = resources.by_key("pods")
TERMINAL_PHASES = ("Succeeded", "Failed")
HASH_LABEL = "pod-template-hash"
# the alphabet of apimachinery's rand.SafeEncodeString: no vowels, no look-alikes
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """The controller reference a controller puts on what it creates."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The owner reference with `controller: true`, if any."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == owner["metadata"]["uid"]


def pod_from_template(
    template: Mapping[str, Any], owner: Mapping[str, Any], *, name: str = "", generate_name: str = ""
) -> Obj:
    """A Pod for `owner` from its pod template: the template's labels, annotations and spec."""
    meta_in = template.get("metadata") or {}
    meta: Obj = {"namespace": owner["metadata"]["namespace"], "ownerReferences": [owner_reference(owner)]}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name
    for key in ("labels", "annotations", "finalizers"):
        if meta_in.get(key):
            meta[key] = copy.deepcopy(meta_in[key])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def _stamp(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _ready_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    cond = _ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def ready_for(pod: Mapping[str, Any], at: float | None = None) -> float:
    """Seconds the pod has been Ready (0 when it is not)."""
    cond = _ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return 0.0
    since = _stamp(cond.get("lastTransitionTime"))
    if since is None:
        return 0.0
    return max(0.0, (at if at is not None else datetime.now(UTC).timestamp()) - since)


def pod_available(pod: Mapping[str, Any], min_ready_seconds: int, at: float | None = None) -> bool:
    """Ready, and for at least `min_ready_seconds` (as upstream's IsPodAvailable)."""
    if not pod_ready(pod):
        return False
    return min_ready_seconds <= 0 or ready_for(pod, at) >= min_ready_seconds


def availability_pending(pods: Iterable[Mapping[str, Any]], min_ready_seconds: int) -> float | None:
    """Seconds until the next of these Ready pods becomes available, or None when none is waiting."""
    if min_ready_seconds <= 0:
        return None
    waits = [
        min_ready_seconds - ready_for(p)
        for p in pods
        if pod_ready(p) and not pod_available(p, min_ready_seconds)
    ]
    return max(0.0, min(waits)) if waits else None


def pod_active(pod: Mapping[str, Any]) -> bool:
    """Counts towards a controller's replicas: not finished and not being deleted."""
    return (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES and not pod["metadata"].get(
        "deletionTimestamp"
    )


def deletion_order(pods: Iterable[Obj]) -> list[Obj]:
    """The pods to delete first first: unscheduled, then Pending before Running, not Ready before Ready,
    Ready for less time, more restarts, then the newest (upstream's ActivePods ordering)."""
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}

    def restarts(pod: Obj) -> int:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return sum(int(s.get("restartCount", 0)) for s in statuses)

    newest_first = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
    return sorted(
        newest_first,
        key=lambda p: (
            bool((p.get("spec") or {}).get("nodeName")),
            phase_rank.get((p.get("status") or {}).get("phase", "Pending"), 0),
            pod_ready(p),
            ready_for(p) // 1,
            -restarts(p),
        ),
    )


def _semantic(value: Any) -> Any:
    """`value` without nulls, empty maps and empty lists: typed clients (kubectl's rollout undo) send
    `creationTimestamp: null` and omit empty fields, which must not make a template look different."""
    if isinstance(value, dict):
        out = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def canonical_template(template: Mapping[str, Any]) -> Obj:
    """A pod template as compared and hashed: semantic form, without the `pod-template-hash` label."""
    out: Obj = _semantic(copy.deepcopy(dict(template)))
    labels = (out.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    if "metadata" in out and not labels:
        out["metadata"].pop("labels", None)
    return out


def templates_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal ignoring the hash label (upstream's EqualIgnoreHash)."""
    return canonical_template(a) == canonical_template(b)


def template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    """A stable, name-safe hash of a pod template (what names a Deployment's ReplicaSets)."""
    text = json.dumps(canonical_template(template), sort_keys=True, separators=(",", ":"))
    if collision_count:
        text += f"#{collision_count}"
    number = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
    out = ""
    while True:
        number, digit = divmod(number, len(_SAFE_ALPHABET))
        out += _SAFE_ALPHABET[digit]
        if not number:
            return out


def selector_of(obj: Mapping[str, Any]) -> LabelSelector:
    return LabelSelector.from_dict((obj.get("spec") or {}).get("selector"))


def int_field(obj: Mapping[str, Any], name: str, default: int = 0) -> int:
    return int((obj.get("spec") or {}).get(name, default) or 0)


def set_condition(
    conditions: list[dict[str, Any]], kind: str, status: str, reason: str, message: str, *, updated: bool
) -> list[dict[str, Any]]:
    """`conditions` with `kind` set; its timestamps move only when status (transition) or reason and
    message (`lastUpdateTime`, when the type has one: `updated`) change."""
    stamp = now()
    out = [dict(c) for c in conditions]
    for cond in out:
        if cond.get("type") != kind:
            continue
        if cond.get("status") != status:
            cond["lastTransitionTime"] = stamp
        if (cond.get("reason"), cond.get("message")) != (reason, message) and updated:
            cond["lastUpdateTime"] = stamp
        cond.update(status=status, reason=reason, message=message)
        return out
    new = {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": stamp}
    if updated:
        new["lastUpdateTime"] = stamp
    return [*out, new]


class DelayedWake:
    """One pending timer that runs a controller's next pass when the earliest pod waiting out its
    `minReadySeconds` becomes available. Outside an event loop (tests driving `reconcile()` by hand,
    who pass time themselves) it does nothing."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._handle: asyncio.TimerHandle | None = None

    def within(self, seconds: float | None) -> None:
        """Make sure a pass runs no later than `seconds` from now (None: nothing is waiting)."""
        if seconds is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        due = loop.time() + seconds + 0.05
        if (
            self._handle is not None
            and not self._handle.cancelled()
            and loop.time() < self._handle.when() <= due
        ):
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_at(due, self._wake)


def nonzero(status: dict[str, Any], *always: str) -> dict[str, Any]:
    """A status without its zero counts, as upstream's `omitempty` fields (those in `always` stay)."""
    return {k: v for k, v in status.items() if k in always or v not in (0, None)}

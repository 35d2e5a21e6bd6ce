"""Unit tests of the model: selectors, resourceVersion, generation, GC, watch history, patches, apply."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sim.k8s import patch, resources
from sim.k8s.errors import ApiError
from sim.k8s.selectors import FieldSelector, LabelSelector
from sim.k8s.store import Store

pytestmark = pytest.mark.timeout(30)

CM = resources.by_key("configmaps")
POD = resources.by_key("pods")
DEPLOY = resources.by_key("deployments.apps")
RS = resources.by_key("replicasets.apps")
NS = resources.NAMESPACE


def _pod(name: str, labels: dict[str, str] | None = None, node: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "app:1"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def _deployment(name: str = "web", replicas: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]}]
                },
            },
        },
    }


def test_label_selector_forms() -> None:
    obj = {"metadata": {"labels": {"app": "web", "tier": "front"}}}
    assert LabelSelector.parse("app=web,tier==front").matches(obj)
    assert LabelSelector.parse("app in (web, api),!missing").matches(obj)
    assert not LabelSelector.parse("app notin (web)").matches(obj)
    assert not LabelSelector.parse("app!=web").matches(obj)
    assert LabelSelector.parse("tier").matches(obj)
    assert LabelSelector.parse("").matches(obj)
    assert LabelSelector.from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}],
        }
    ).matches(obj)
    with pytest.raises(ApiError) as exc:
        LabelSelector.parse("!app in (x)")
    assert exc.value.code == 400


def test_field_selector() -> None:
    pod = {"metadata": {"name": "p", "namespace": "default"}, "status": {"phase": "Running"}, "spec": {}}
    assert FieldSelector.parse("metadata.name=p,status.phase!=Pending").matches(pod)
    assert FieldSelector.parse("spec.nodeName=").matches(pod)
    assert not FieldSelector.parse("metadata.namespace==kube-system").matches(pod)


def test_start_state_and_default_service_account() -> None:
    store = Store()
    names = [o["metadata"]["name"] for o in store.list(NS)["items"]]
    assert {"default", "kube-system"} <= set(names)
    store.create(NS, {"metadata": {"name": "shop"}})
    sa = store.get(resources.SERVICE_ACCOUNT, "shop", "default")
    assert sa["metadata"]["namespace"] == "shop"


def test_create_get_conflicts() -> None:
    store = Store()
    created = store.create(CM, {"metadata": {"name": "a"}, "data": {"k": "v"}}, "default")
    meta = created["metadata"]
    assert meta["uid"]
    assert meta["creationTimestamp"]
    assert int(meta["resourceVersion"]) == store.rv
    with pytest.raises(ApiError) as exc:
        store.create(CM, {"metadata": {"name": "a"}}, "default")
    assert (exc.value.code, exc.value.reason) == (409, "AlreadyExists")
    stale = dict(created, data={"k": "w"})
    store.update(CM, "default", "a", stale)
    with pytest.raises(ApiError) as exc:
        store.update(CM, "default", "a", stale)  # same resourceVersion again: stale now
    assert (exc.value.code, exc.value.reason) == (409, "Conflict")
    with pytest.raises(ApiError) as exc:
        store.get(CM, "default", "missing")
    assert exc.value.code == 404
    with pytest.raises(ApiError) as exc:
        store.create(CM, {"metadata": {"name": "b"}}, "nowhere")
    assert exc.value.code == 404


def test_generation_bumps_on_spec_only() -> None:
    store = Store()
    dep = store.create(DEPLOY, _deployment(), "default")
    assert dep["metadata"]["generation"] == 1
    dep["metadata"]["labels"] = {"x": "y"}
    dep = store.update(DEPLOY, "default", "web", dep)
    assert dep["metadata"]["generation"] == 1
    dep = store.update(DEPLOY, "default", "web", dict(dep, status={"replicas": 1}), subresource="status")
    assert dep["metadata"]["generation"] == 1
    assert dep["status"] == {"replicas": 1}
    dep["spec"]["replicas"] = 3
    dep = store.update(DEPLOY, "default", "web", dep)
    assert dep["metadata"]["generation"] == 2
    assert dep["status"] == {"replicas": 1}  # the main resource does not write status


def test_list_selectors_limit_continue() -> None:
    store = Store()
    for i in range(5):
        store.create(
            POD, _pod(f"p{i}", {"app": "web" if i % 2 else "api"}, node="n1" if i < 2 else ""), "default"
        )
    assert len(store.list(POD, "default", "app=web")["items"]) == 2
    assert [
        p["metadata"]["name"] for p in store.list(POD, None, field_selector="spec.nodeName=n1")["items"]
    ] == [
        "p0",
        "p1",
    ]
    assert len(store.list(POD, None, field_selector="status.phase=Pending")["items"]) == 5
    page = store.list(POD, "default", limit=2)
    seen = [p["metadata"]["name"] for p in page["items"]]
    assert page["metadata"]["remainingItemCount"] == 3
    for _ in range(5):
        token = page["metadata"].get("continue")
        if not token:
            break
        page = store.list(POD, "default", limit=2, continue_token=token)
        seen += [p["metadata"]["name"] for p in page["items"]]
    assert seen == [f"p{i}" for i in range(5)]


def test_owner_reference_gc_and_orphan() -> None:
    store = Store()
    dep = store.create(DEPLOY, _deployment(), "default")
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": dep["metadata"]["uid"]}
    rs = store.create(
        RS, {**_deployment("web-1"), "metadata": {"name": "web-1", "ownerReferences": [owner]}}, "default"
    )
    rs_owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": rs["metadata"]["uid"]}
    store.create(
        POD, {**_pod("web-1-a"), "metadata": {"name": "web-1-a", "ownerReferences": [rs_owner]}}, "default"
    )
    store.delete(DEPLOY, "default", "web", propagation="Background")
    assert store.list(RS, "default")["items"] == []
    assert store.list(POD, "default")["items"] == []

    dep = store.create(DEPLOY, _deployment(), "default")
    owner["uid"] = dep["metadata"]["uid"]
    store.create(
        RS, {**_deployment("web-2"), "metadata": {"name": "web-2", "ownerReferences": [owner]}}, "default"
    )
    store.delete(DEPLOY, "default", "web", propagation="Orphan")
    orphan = store.get(RS, "default", "web-2")
    assert "ownerReferences" not in orphan["metadata"]


def test_finalizers_hold_deletion() -> None:
    store = Store()
    store.create(CM, {"metadata": {"name": "f", "finalizers": ["example.com/x"]}}, "default")
    marked = store.delete(CM, "default", "f")
    assert marked["metadata"]["deletionTimestamp"]
    marked["metadata"]["finalizers"] = []
    store.update(CM, "default", "f", marked)
    with pytest.raises(ApiError):
        store.get(CM, "default", "f")


def test_namespace_delete_cascades() -> None:
    store = Store()
    store.create(NS, {"metadata": {"name": "tmp"}})
    assert store.find(resources.SERVICE_ACCOUNT, "tmp", "default") is not None
    store.create(CM, {"metadata": {"name": "a"}}, "tmp")
    store.create(CM, {"metadata": {"name": "held", "finalizers": ["example.com/x"]}}, "tmp")
    store.delete(NS, None, "tmp")
    assert store.list(CM, "tmp")["items"] == []
    assert store.find(resources.SERVICE_ACCOUNT, "tmp", "default") is None


def _owned(store: Store, name: str, owner: dict[str, Any], **meta: Any) -> None:
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"]}
    ref["uid"] = owner["metadata"]["uid"]
    store.create(CM, {"metadata": {"name": name, "ownerReferences": [ref], **meta}}, "default")


@pytest.mark.parametrize(
    ("propagation", "order"),
    [("Background", ["owner", "child"]), ("Foreground", ["child", "owner"])],
)
def test_dependents_go_after_the_owner_or_before_it_in_the_foreground(
    propagation: str, order: list[str]
) -> None:
    store = Store()
    owner = store.create(CM, {"metadata": {"name": "owner"}}, "default")
    _owned(store, "child", owner)
    gone: list[str] = []
    store.listeners.append(lambda e: gone.append(e.obj["metadata"]["name"]) if e.type == "DELETED" else None)
    store.delete(CM, "default", "owner", propagation=propagation)
    assert gone == order


def test_a_dependent_with_another_owner_only_loses_its_reference() -> None:
    store = Store()
    first = store.create(CM, {"metadata": {"name": "first"}}, "default")
    second = store.create(CM, {"metadata": {"name": "second"}}, "default")
    _owned(store, "shared", first)
    shared = store.get(CM, "default", "shared")
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "second", "uid": second["metadata"]["uid"]}
    shared["metadata"]["ownerReferences"].append(ref)
    store.update(CM, "default", "shared", shared)
    store.delete(CM, "default", "first")
    assert [r["name"] for r in store.get(CM, "default", "shared")["metadata"]["ownerReferences"]] == [
        "second"
    ]
    store.delete(CM, "default", "second")
    assert store.find(CM, "default", "shared") is None


def test_an_owner_held_by_finalizers_has_its_dependents_collected_at_once() -> None:
    store = Store()
    owner = store.create(CM, {"metadata": {"name": "owner", "finalizers": ["example.com/x"]}}, "default")
    _owned(store, "child", owner)
    marked = store.delete(CM, "default", "owner")
    assert marked["metadata"]["deletionTimestamp"]
    assert store.find(CM, "default", "child") is None


def test_a_cascade_hears_of_creates_and_each_moment_of_a_delete() -> None:
    heard: list[tuple[str, ...]] = []

    class Recorder:
        def created(self, store: Store, rt: Any, obj: dict[str, Any]) -> None:
            heard.append(("created", obj["metadata"]["name"]))

        def deleting(self, store: Store, rt: Any, obj: dict[str, Any], propagation: str, moment: str) -> None:
            heard.append((moment, obj["metadata"]["name"], propagation))

    store = Store()
    store.cascades.append(Recorder())
    store.create(CM, {"metadata": {"name": "a"}}, "default")
    store.create(CM, {"metadata": {"name": "b", "finalizers": ["example.com/x"]}}, "default")
    store.delete(CM, "default", "a", propagation="Orphan")
    store.delete(CM, "default", "b")
    assert heard == [
        ("created", "a"),
        ("created", "b"),
        ("removing", "a", "Orphan"),
        ("removed", "a", "Orphan"),
        ("marked", "b", "Background"),
    ]


async def _drain(store: Store, **kwargs: Any) -> list[tuple[str, str]]:
    watcher = store.watch(CM, **kwargs)
    out = []
    while not watcher.queue.empty():
        item = await asyncio.wait_for(watcher.queue.get(), 1)
        if item is None:
            break
        out.append(
            (item["type"], item["object"].get("metadata", {}).get("name") or item["object"].get("reason"))
        )
    store.unwatch(watcher)
    return out


async def test_watch_history_replay_selectors_and_expiry() -> None:
    store = Store(history=5)
    start = store.rv
    store.create(CM, {"metadata": {"name": "a", "labels": {"w": "1"}}}, "default")
    store.create(CM, {"metadata": {"name": "b"}}, "default")
    assert await _drain(store, namespace="default", resource_version=str(start)) == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]
    assert await _drain(store, namespace="default") == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]  # no rv: current state
    watcher = store.watch(CM, "default", label_selector="w=1", resource_version=str(store.rv))
    obj = store.get(CM, "default", "a")
    obj["metadata"]["labels"] = {}
    store.update(CM, "default", "a", obj)  # leaves the selection: DELETED for this watcher
    item = await asyncio.wait_for(watcher.queue.get(), 1)
    assert item is not None
    assert item["type"] == "DELETED"
    store.unwatch(watcher)
    for i in range(10):
        store.create(CM, {"metadata": {"name": f"x{i}"}}, "default")
    expired = await _drain(store, namespace="default", resource_version=str(start))
    assert expired == [("ERROR", "Expired")]


def test_strategic_merge_by_key_and_directives() -> None:
    live = _deployment()
    containers = live["spec"]["template"]["spec"]["containers"]
    containers.append({"name": "sidecar", "image": "side:1"})
    patched = patch.strategic_merge(
        "Deployment",
        live,
        {
            "spec": {
                "template": {
                    "spec": {
                        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                        "containers": [
                            {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]},
                            {"name": "sidecar", "$patch": "delete"},
                        ],
                    }
                }
            },
            "metadata": {"finalizers": ["a"], "labels": {"gone": None}},
        },
    )
    out = patched["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in out] == ["app"]
    assert out[0]["image"] == "app:2"
    assert [e["name"] for e in out[0]["env"]] == ["A", "B"]
    svc = patch.strategic_merge(
        "Service",
        {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
    )
    assert svc["spec"]["ports"][0] == {"port": 80, "name": "http", "targetPort": 8080}
    assert len(svc["spec"]["ports"]) == 2
    replaced = patch.strategic_merge(
        "ConfigMap", {"data": {"a": "1"}}, {"data": {"$patch": "replace", "b": "2"}}
    )
    assert replaced["data"] == {"b": "2"}


def test_json_and_merge_patch() -> None:
    store = Store()
    store.create(CM, {"metadata": {"name": "a"}, "data": {"k": "v", "x": "y"}}, "default")
    out = store.patch(CM, "default", "a", "merge", {"data": {"x": None, "n": "1"}})
    assert out["data"] == {"k": "v", "n": "1"}
    out = store.patch(CM, "default", "a", "json", [{"op": "replace", "path": "/data/k", "value": "w"}])
    assert out["data"]["k"] == "w"
    with pytest.raises(ApiError) as exc:
        store.patch(CM, "default", "a", "json", [{"op": "test", "path": "/data/k", "value": "nope"}])
    assert exc.value.code == 422


def test_server_side_apply_ownership_conflicts_and_removal() -> None:
    store = Store()
    body = {"apiVersion": "apps/v1", "kind": "Deployment", **_deployment(replicas=2)}
    created = store.apply(DEPLOY, "default", "web", body, manager="alice")
    assert created["metadata"]["managedFields"][0]["manager"] == "alice"
    # bob sets a different replicas: conflict naming alice and the field
    bob = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 5},
    }
    with pytest.raises(ApiError) as exc:
        store.apply(DEPLOY, "default", "web", bob, manager="bob")
    assert exc.value.code == 409
    assert '"alice"' in exc.value.message
    assert ".spec.replicas" in exc.value.message
    forced = store.apply(DEPLOY, "default", "web", bob, manager="bob", force=True)
    assert forced["spec"]["replicas"] == 5
    owners = {e["manager"]: e["fieldsV1"] for e in forced["metadata"]["managedFields"]}
    assert "f:replicas" in owners["bob"]["f:spec"]
    assert "f:replicas" not in owners["alice"]["f:spec"]
    # alice drops her env var: it goes; the container stays
    again = {"apiVersion": "apps/v1", "kind": "Deployment", **_deployment(replicas=5)}
    del again["spec"]["template"]["spec"]["containers"][0]["env"]
    out = store.apply(DEPLOY, "default", "web", again, manager="alice")
    assert store.apply(DEPLOY, "default", "web", again, manager="alice") == out  # unchanged: no new version
    assert "env" not in out["spec"]["template"]["spec"]["containers"][0]
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "app:1"


def test_persistence_round_trip(tmp_path: Path) -> None:
    store = Store(data_dir=tmp_path)
    store.create(CM, {"metadata": {"name": "kept"}, "data": {"a": "1"}}, "default")
    assert store.snapshots is not None
    assert store.snapshots.dirty
    store.snapshots.save()
    assert not store.snapshots.dirty
    rv = store.rv
    again = Store(data_dir=tmp_path)
    assert again.rv == rv
    assert again.get(CM, "default", "kept")["data"] == {"a": "1"}
    assert again.create(CM, {"metadata": {"name": "next"}}, "default")["metadata"]["resourceVersion"] == str(
        rv + 1
    )


def test_validation_modes_collect_every_unknown_field() -> None:
    from sim.k8s.validation import validate

    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": {},
            "template": {"spec": {"containers": [{"name": "a", "imag": "x"}]}},
            "extra": 1,
        },
    }
    warnings: list[str] = []
    validate(obj, "Warn", warnings)
    assert sorted(warnings) == [
        'unknown field "spec.extra"',
        'unknown field "spec.template.spec.containers[0].imag"',
    ]
    with pytest.raises(ApiError) as exc:
        validate(obj, "Strict", [])
    assert exc.value.code == 422
    assert len(exc.value.details["causes"]) == 2
    quiet: list[str] = []
    validate(obj, "Ignore", quiet)
    assert quiet == []
    with pytest.raises(ApiError) as exc:
        validate({**obj, "spec": {"replicas": "two"}}, "Ignore", [])
    assert exc.value.details["causes"][0]["field"] == "spec.replicas"


def test_graceful_pod_deletion_waits_for_the_kubelet() -> None:
    store = Store(graceful_pods=True)
    store.create(POD, _pod("bound", node="n1"), "default")
    marked = store.delete(POD, "default", "bound")
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    terminating = store.get(POD, "default", "bound")
    assert terminating["metadata"]["deletionTimestamp"]
    store.update(
        POD, "default", "bound", dict(terminating, status={"phase": "Running"}), subresource="status"
    )
    assert store.get(POD, "default", "bound")["status"] == {"phase": "Running"}  # still there
    store.delete(POD, "default", "bound", grace_period=0)  # the kubelet confirms
    with pytest.raises(ApiError):
        store.get(POD, "default", "bound")
    store.create(POD, _pod("unbound"), "default")
    store.delete(POD, "default", "unbound")  # never scheduled: gone at once
    with pytest.raises(ApiError):
        store.get(POD, "default", "unbound")


def test_create_ignores_status_except_for_nodes() -> None:
    store = Store()
    dep = store.create(DEPLOY, {**_deployment(), "status": {"readyReplicas": 9}}, "default")
    assert "status" not in dep
    pod = store.create(POD, {**_pod("p"), "status": {"phase": "Running"}}, "default")
    assert pod["status"]["phase"] == "Pending"
    node = store.create(
        resources.by_key("nodes"), {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "2"}}}
    )
    assert node["status"] == {"capacity": {"cpu": "2"}}

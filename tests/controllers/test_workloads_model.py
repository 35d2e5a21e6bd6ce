"""The workload controllers in-process with a `Store` (no processes, no kubelet): their `reconcile()`
driven by hand, pods marked Ready through the status subresource as a kubelet would. Proves the rolling
update arithmetic (surge rounded up, unavailability rounded down, both bounds held at every step),
Recreate, revisions and history pruning, ReplicaSet adoption and surplus deletion, StatefulSet order."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pytest

from sim.controllers.deployment import DeploymentController, resolve, surge_and_unavailable
from sim.controllers.replicaset import ReplicaSetController
from sim.controllers.statefulset import StatefulSetController
from sim.controllers.workloads import controller_of, pod_ready, template_hash
from sim.k8s import resources
from sim.k8s.store import Store, now

pytestmark = pytest.mark.timeout(60)

PODS = resources.by_key("pods")
RS = resources.by_key("replicasets.apps")
DEPLOY = resources.by_key("deployments.apps")
STS = resources.by_key("statefulsets.apps")
EVENTS = resources.by_key("events")
REVISION = "deployment.kubernetes.io/revision"
NS = "default"
MAX_PASSES = 50


class Controllers:
    """The three controllers on one store; `settle()` runs passes until nothing changes (bounded), calling
    `check` after every single pass."""

    def __init__(self) -> None:
        self.store = Store()
        self.loops = [
            DeploymentController(self.store),
            ReplicaSetController(self.store),
            StatefulSetController(self.store),
        ]

    def settle(self, check: Callable[[], None] = lambda: None) -> None:
        for _ in range(MAX_PASSES):
            before = self.store.rv
            for loop in self.loops:
                loop.reconcile()
                check()
            if self.store.rv == before:
                return
        raise AssertionError("the controllers did not settle")

    def pods(self, **labels: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.store.iter_objects(PODS, NS)
            if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
        ]

    def set_pod(
        self, name: str, *, ready: bool = True, phase: str = "Running", node: str = "node-1", since: str = ""
    ) -> None:
        """What the scheduler and kubelet would write: bound to a node, Running, Ready (or not)."""
        pod = self.store.get(PODS, NS, name)
        if node and not pod["spec"].get("nodeName"):
            pod["spec"]["nodeName"] = node
            pod = self.store.update(PODS, NS, name, pod)
        pod["status"] = {
            **(pod.get("status") or {}),
            "phase": phase,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": since or now(),
                }
            ],
        }
        self.store.update(PODS, NS, name, pod, subresource="status")

    def ready_all(self) -> None:
        for pod in list(self.store.iter_objects(PODS, NS)):
            if not pod_ready(pod):
                self.set_pod(pod["metadata"]["name"])

    def rs_of(self, deployment: str) -> list[dict[str, Any]]:
        return sorted(
            (
                rs
                for rs in self.store.iter_objects(RS, NS)
                if (controller_of(rs) or {}).get("name") == deployment
            ),
            key=lambda rs: int(rs["metadata"]["annotations"][REVISION]),
        )


def template(app: str, version: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": "app:1", "env": [{"name": "V", "value": version}]}]},
    }


def deployment(name: str, replicas: int, version: str = "1", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, version),
            **spec,
        },
    }


def set_template(c: Controllers, name: str, version: str) -> None:
    d = c.store.get(DEPLOY, NS, name)
    d["spec"]["template"] = template(name, version)
    c.store.update(DEPLOY, NS, name, d)


def deployment_complete(c: Controllers, name: str) -> bool:
    d = c.store.get(DEPLOY, NS, name)
    status = d.get("status") or {}
    want = d["spec"]["replicas"]
    return bool(
        status.get("observedGeneration") == d["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == want
        and status.get("replicas", 0) == want
        and status.get("availableReplicas", 0) == want
    )


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj["status"].get("conditions") or []}


# -- arithmetic


def test_int_or_percent_rounds_surge_up_and_unavailable_down() -> None:
    assert resolve("25%", 10, round_up=True) == 3
    assert resolve("25%", 10, round_up=False) == 2
    assert resolve(2, 10, round_up=True) == 2
    assert surge_and_unavailable(deployment("a", 10)) == (3, 2)  # the defaults: 25% and 25%
    assert surge_and_unavailable(deployment("a", 10, strategy={"type": "Recreate"})) == (0, 0)
    zero = deployment(
        "a", 3, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"}}
    )
    assert surge_and_unavailable(zero) == (0, 1)  # both 0: one may be unavailable, as upstream


def test_template_hash_is_stable_and_ignores_nulls_and_its_own_label() -> None:
    plain = template("web", "1")
    typed = copy.deepcopy(plain)
    typed["metadata"]["creationTimestamp"] = None
    typed["metadata"]["labels"]["pod-template-hash"] = "abc"
    assert template_hash(plain) == template_hash(typed)
    assert template_hash(plain) != template_hash(template("web", "2"))
    assert template_hash(plain) != template_hash(plain, collision_count=1)


# -- Deployment


def test_rolling_update_holds_surge_and_availability_at_every_step() -> None:
    c = Controllers()
    replicas, surge, unavailable = 10, 3, 2  # 25% of 10: surge rounds up to 3, unavailable down to 2
    c.store.create(DEPLOY, deployment("web", replicas), NS)
    c.settle()
    c.ready_all()
    c.settle()
    assert deployment_complete(c, "web")
    d = c.store.get(DEPLOY, NS, "web")
    assert conditions(d) == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }

    seen_pods: list[int] = []
    seen_available: list[int] = []

    def bounds() -> None:
        pods = c.pods(app="web")
        available = sum(1 for p in pods if pod_ready(p))
        seen_pods.append(len(pods))
        seen_available.append(available)
        assert len(pods) <= replicas + surge
        assert available >= replicas - unavailable

    set_template(c, "web", "2")
    for _ in range(3 * replicas):
        c.settle(bounds)
        if deployment_complete(c, "web"):
            break
        waiting = sorted(p["metadata"]["name"] for p in c.pods(app="web") if not pod_ready(p))
        assert waiting, "the rollout stalled with every pod Ready"
        c.set_pod(waiting[0])
    assert deployment_complete(c, "web")
    # the bounds were reached, not only respected: the rounding is upstream's
    assert max(seen_pods) == replicas + surge
    assert min(seen_available) == replicas - unavailable
    old, new = c.rs_of("web")
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, replicas)
    assert all(
        p["metadata"]["labels"]["pod-template-hash"] in new["metadata"]["name"] for p in c.pods(app="web")
    )
    events = [e["message"] for e in c.store.iter_objects(EVENTS, NS) if e["involvedObject"]["name"] == "web"]
    assert f"Scaled up replica set {new['metadata']['name']} to {surge}" in events


def test_recreate_removes_every_old_pod_before_a_new_one() -> None:
    c = Controllers()
    c.store.create(DEPLOY, deployment("batch", 3, strategy={"type": "Recreate"}), NS)
    c.settle()
    c.ready_all()
    c.settle()
    first = c.rs_of("batch")[0]["metadata"]["name"]

    def never_mixed() -> None:
        hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in c.pods(app="batch")}
        assert len(hashes) <= 1, hashes

    set_template(c, "batch", "2")
    c.settle(never_mixed)
    old, new = c.rs_of("batch")
    assert old["metadata"]["name"] == first
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 3)
    assert len(c.pods(app="batch")) == 3
    d = c.store.get(DEPLOY, NS, "batch")
    assert conditions(d)["Available"] == ("False", "MinimumReplicasUnavailable")  # none Ready yet
    c.ready_all()
    c.settle()
    assert deployment_complete(c, "batch")


def test_revisions_count_up_and_an_old_template_coming_back_takes_a_new_one() -> None:
    c = Controllers()
    c.store.create(DEPLOY, deployment("web", 1), NS)

    def roll_to(version: str) -> None:
        set_template(c, "web", version)
        for _ in range(5):
            c.settle()
            c.ready_all()
        assert deployment_complete(c, "web")

    roll_to("1")
    roll_to("2")
    (v1, v2) = c.rs_of("web")
    assert [v1["metadata"]["annotations"][REVISION], v2["metadata"]["annotations"][REVISION]] == ["1", "2"]
    assert c.store.get(DEPLOY, NS, "web")["metadata"]["annotations"][REVISION] == "2"
    roll_to("1")  # what `kubectl rollout undo` does
    back = {rs["metadata"]["name"]: rs for rs in c.rs_of("web")}[v1["metadata"]["name"]]
    assert back["metadata"]["annotations"][REVISION] == "3"
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert back["spec"]["replicas"] == 1
    assert c.store.get(DEPLOY, NS, "web")["metadata"]["annotations"][REVISION] == "3"
    assert len(c.rs_of("web")) == 2  # no new ReplicaSet for a template seen before


def test_revision_history_limit_prunes_the_oldest_scaled_down_replicasets() -> None:
    c = Controllers()
    c.store.create(DEPLOY, deployment("web", 1, revisionHistoryLimit=1), NS)
    for version in ("2", "3", "4"):
        for _ in range(5):
            c.settle()
            c.ready_all()
        set_template(c, "web", version)
    for _ in range(5):
        c.settle()
        c.ready_all()
    assert deployment_complete(c, "web")
    left = c.rs_of("web")
    assert [rs["metadata"]["annotations"][REVISION] for rs in left] == ["3", "4"]
    assert [rs["spec"]["replicas"] for rs in left] == [0, 1]


def test_paused_deployment_scales_but_does_not_roll() -> None:
    c = Controllers()
    c.store.create(DEPLOY, deployment("web", 2), NS)
    c.settle()
    c.ready_all()
    c.settle()
    d = c.store.get(DEPLOY, NS, "web")
    d["spec"]["paused"] = True
    d["spec"]["replicas"] = 3
    d["spec"]["template"] = template("web", "2")
    c.store.update(DEPLOY, NS, "web", d)
    c.settle()
    (only,) = c.rs_of("web")
    assert only["spec"]["replicas"] == 3
    assert conditions(c.store.get(DEPLOY, NS, "web"))["Progressing"] == ("Unknown", "DeploymentPaused")
    d = c.store.get(DEPLOY, NS, "web")
    d["spec"]["paused"] = False
    c.store.update(DEPLOY, NS, "web", d)
    c.settle()
    assert len(c.rs_of("web")) == 2


def test_deleting_a_deployment_collects_its_replicasets_and_pods() -> None:
    c = Controllers()
    c.store.create(DEPLOY, deployment("web", 2), NS)
    c.settle()
    assert len(c.pods(app="web")) == 2
    c.store.delete(DEPLOY, NS, "web")
    c.settle()
    assert c.rs_of("web") == []
    assert c.pods(app="web") == []


def test_orphan_propagation_keeps_the_replicasets_and_foreground_removes_everything() -> None:
    c = Controllers()
    c.store.create(DEPLOY, deployment("web", 2), NS)
    c.settle()
    c.store.delete(DEPLOY, NS, "web", propagation="Orphan")
    c.settle()
    (rs,) = c.store.iter_objects(RS, NS)
    assert "ownerReferences" not in rs["metadata"]
    assert len(c.pods(app="web")) == 2
    assert all((controller_of(p) or {}).get("uid") == rs["metadata"]["uid"] for p in c.pods(app="web"))
    c.store.create(DEPLOY, deployment("web", 2), NS)  # adopts the orphaned ReplicaSet
    c.settle()
    assert [r["metadata"]["name"] for r in c.rs_of("web")] == [rs["metadata"]["name"]]
    c.store.delete(DEPLOY, NS, "web", propagation="Foreground")
    assert list(c.store.iter_objects(RS, NS)) == []
    assert c.pods(app="web") == []


# -- ReplicaSet


def replicaset(name: str, replicas: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, "1"),
        },
    }


def test_replicaset_adopts_orphans_creates_the_rest_and_counts_only_live_pods() -> None:
    c = Controllers()
    c.store.create(
        PODS,
        {"metadata": {"name": "stray", "labels": {"app": "cache"}}, "spec": template("x", "1")["spec"]},
        NS,
    )
    c.store.create(RS, replicaset("cache", 3), NS)
    c.settle()
    pods = c.pods(app="cache")
    assert len(pods) == 3
    rs = c.store.get(RS, NS, "cache")
    for pod in pods:
        (ref,) = pod["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "cache",
            "uid": rs["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    made = sorted(p["metadata"]["name"] for p in pods if p["metadata"]["name"] != "stray")
    assert len(made) == 2
    assert all(name.startswith("cache-") for name in made)
    c.set_pod("stray")
    c.set_pod(made[0])
    c.settle()
    assert c.store.get(RS, NS, "cache")["status"] == {
        "replicas": 3,
        "fullyLabeledReplicas": 3,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "observedGeneration": 1,
    }
    c.set_pod(made[0], ready=False, phase="Failed")  # a finished pod does not count: it is replaced
    c.settle()
    live = [p for p in c.pods(app="cache") if p["status"].get("phase") != "Failed"]
    assert len(live) == 3
    reasons = [
        e["reason"] for e in c.store.iter_objects(EVENTS, NS) if e["involvedObject"]["name"] == "cache"
    ]
    assert reasons.count("SuccessfulCreate") == 3


def test_available_means_ready_for_min_ready_seconds() -> None:
    c = Controllers()
    rs = replicaset("cache", 2)
    rs["spec"]["minReadySeconds"] = 30
    c.store.create(RS, rs, NS)
    c.settle()
    fresh, settled = sorted(p["metadata"]["name"] for p in c.pods(app="cache"))
    c.set_pod(fresh)
    c.set_pod(settled, since="2020-01-01T00:00:00Z")
    c.settle()
    status = c.store.get(RS, NS, "cache")["status"]
    assert (status["readyReplicas"], status["availableReplicas"]) == (2, 1)


def test_a_pod_turns_available_after_min_ready_seconds_without_another_event() -> None:
    async def run() -> dict[str, Any]:
        c = Controllers()
        for loop in c.loops:
            loop.start()
        try:
            rs = replicaset("cache", 1)
            rs["spec"]["minReadySeconds"] = 1
            c.store.create(RS, rs, NS)
            await asyncio.sleep(0.1)
            (pod,) = c.pods(app="cache")
            c.set_pod(pod["metadata"]["name"])
            for _ in range(50):  # bounded: 5 s
                await asyncio.sleep(0.1)
                status = c.store.get(RS, NS, "cache")["status"]
                if status.get("availableReplicas"):
                    break
            return status
        finally:
            for loop in c.loops:
                await loop.stop()

    status = asyncio.run(run())
    assert (status.get("readyReplicas"), status.get("availableReplicas")) == (1, 1)


def test_replicaset_deletes_unscheduled_then_not_ready_pods_first() -> None:
    c = Controllers()
    c.store.create(RS, replicaset("cache", 3), NS)
    c.settle()
    ready, not_ready, unscheduled = sorted(p["metadata"]["name"] for p in c.pods(app="cache"))
    c.set_pod(ready)
    c.set_pod(not_ready, ready=False)
    rs = c.store.get(RS, NS, "cache")
    rs["spec"]["replicas"] = 2
    c.store.update(RS, NS, "cache", rs)
    c.settle()
    assert sorted(p["metadata"]["name"] for p in c.pods(app="cache")) == sorted([ready, not_ready])
    rs = c.store.get(RS, NS, "cache")
    rs["spec"]["replicas"] = 1
    c.store.update(RS, NS, "cache", rs)
    c.settle()
    assert [p["metadata"]["name"] for p in c.pods(app="cache")] == [ready]
    assert c.store.get(RS, NS, "cache")["status"]["observedGeneration"] == 3
    deleted = [e["message"] for e in c.store.iter_objects(EVENTS, NS) if e["reason"] == "SuccessfulDelete"]
    assert sorted(deleted) == sorted([f"Deleted pod: {unscheduled}", f"Deleted pod: {not_ready}"])


# -- StatefulSet


def statefulset(name: str, replicas: int, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, "1"),
            **spec,
        },
    }


def names(c: Controllers, app: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in c.pods(app=app))


def test_statefulset_creates_in_order_recreates_by_name_and_removes_from_the_top() -> None:
    c = Controllers()
    c.store.create(STS, statefulset("db", 3), NS)
    c.settle()
    assert names(c, "db") == ["db-0"]
    c.set_pod("db-0", ready=False)
    c.settle()
    assert names(c, "db") == ["db-0"]  # Running but not Ready: the next waits
    c.set_pod("db-0")
    c.settle()
    assert names(c, "db") == ["db-0", "db-1"]
    c.set_pod("db-1")
    c.settle()
    c.set_pod("db-2")
    c.settle()
    pod = c.store.get(PODS, NS, "db-1")
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("db-1", "db")
    status = c.store.get(STS, NS, "db")["status"]
    assert (
        status["replicas"],
        status["readyReplicas"],
        status["currentReplicas"],
        status["updatedReplicas"],
    ) == (3, 3, 3, 3)
    assert status["currentRevision"] == status["updateRevision"]

    uid = pod["metadata"]["uid"]
    c.store.delete(PODS, NS, "db-1")
    c.settle()
    again = c.store.get(PODS, NS, "db-1")
    assert again["metadata"]["uid"] != uid
    c.set_pod("db-1")

    sts = c.store.get(STS, NS, "db")
    sts["spec"]["replicas"] = 1
    c.store.update(STS, NS, "db", sts)
    seen: list[list[str]] = []

    def record() -> None:
        if not seen or seen[-1] != names(c, "db"):
            seen.append(names(c, "db"))

    c.settle(record)
    assert seen == [["db-0", "db-1", "db-2"], ["db-0", "db-1"], ["db-0"]]  # db-2 first, alone


def test_statefulset_parallel_creates_all_at_once() -> None:
    c = Controllers()
    c.store.create(STS, statefulset("cache", 3, podManagementPolicy="Parallel"), NS)
    c.settle()
    assert names(c, "cache") == ["cache-0", "cache-1", "cache-2"]


def test_statefulset_rolling_update_goes_from_the_highest_ordinal() -> None:
    c = Controllers()
    c.store.create(STS, statefulset("db", 3, podManagementPolicy="Parallel"), NS)
    c.settle()
    c.ready_all()
    c.settle()
    old_revision = c.store.get(STS, NS, "db")["status"]["currentRevision"]
    sts = c.store.get(STS, NS, "db")
    sts["spec"]["template"] = template("db", "2")
    c.store.update(STS, NS, "db", sts)
    order: list[str] = []
    for _ in range(10):
        c.settle()
        status = c.store.get(STS, NS, "db")["status"]
        if status["currentRevision"] == status["updateRevision"] and status.get("readyReplicas") == 3:
            break
        for pod in c.pods(app="db"):
            if not pod_ready(pod):
                order.append(pod["metadata"]["name"])
                c.set_pod(pod["metadata"]["name"])
    assert order == ["db-2", "db-1", "db-0"]
    status = c.store.get(STS, NS, "db")["status"]
    assert status["updateRevision"] != old_revision
    assert status["currentRevision"] == status["updateRevision"]
    assert status["updatedReplicas"] == 3
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in c.pods(app="db")} == {
        status["updateRevision"]
    }

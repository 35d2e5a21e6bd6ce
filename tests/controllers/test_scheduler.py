"""Where the local scheduler puts a pod: the nodes with room, its topology spread constraints honoured
(a `ScheduleAnyway` one prefers the least crowded zone, a `DoNotSchedule` one rules out the nodes that
would skew it too far), then the least loaded node."""

from __future__ import annotations

from typing import Any

from sim.controllers.scheduler import place, preemption

ZONE = "topology.kubernetes.io/zone"
APP = {"app.kubernetes.io/name": "product-catalog"}


def node(name: str, zone: str | None, memory: str = "4Gi", unschedulable: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {ZONE: zone} if zone else {}},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "allocatable": {"cpu": "2", "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(
    name: str,
    on: str | None = None,
    labels: dict[str, str] = APP,
    memory: str = "256Mi",
    namespace: str = "shop",
    spread: str | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    spec: dict[str, Any] = {"containers": [{"name": "app", "resources": {"requests": {"memory": memory}}}]}
    if on:
        spec["nodeName"] = on
    if spread:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": ZONE,
                "whenUnsatisfiable": spread,
                "labelSelector": {"matchLabels": APP},
            }
        ]
    return {"metadata": metadata, "spec": spec, "status": {"phase": "Running" if on else "Pending"}}


def test_without_constraints_the_least_loaded_node_wins() -> None:
    nodes = [node("a", "zone-a"), node("b", "zone-b")]
    busy = pod("other", on="a", labels={"app.kubernetes.io/name": "cart"})
    assert place(pod("new"), nodes, [busy]) == ("b", "")


def test_schedule_anyway_puts_a_replica_in_the_zone_without_one_even_on_a_busier_node() -> None:
    nodes = [node("a", "zone-a"), node("b", "zone-b")]
    others = [
        pod("replica-1", on="a"),
        pod("cart-1", on="b", labels={"app.kubernetes.io/name": "cart"}, memory="2Gi"),
    ]
    assert place(pod("replica-2", spread="ScheduleAnyway"), nodes, others) == ("b", "")


def test_schedule_anyway_still_places_the_pod_where_only_a_crowded_zone_has_room() -> None:
    nodes = [node("a", "zone-a"), node("b", "zone-b", memory="128Mi")]
    assert place(pod("replica-2", spread="ScheduleAnyway"), nodes, [pod("replica-1", on="a")]) == ("a", "")


def test_do_not_schedule_leaves_the_pod_pending_rather_than_skew_the_zones() -> None:
    nodes = [node("a", "zone-a"), node("b", "zone-b", memory="128Mi")]
    assert place(pod("replica-2", spread="DoNotSchedule"), nodes, [pod("replica-1", on="a")]) == (
        None,
        "0/2 nodes are available: 1 Insufficient memory, "
        "1 node(s) didn't match pod topology spread constraints.",
    )


def test_only_running_pods_the_selector_matches_in_the_namespace_count() -> None:
    nodes = [node("a", "zone-a"), node("b", "zone-b")]
    elsewhere = [
        pod("going", on="b", deleting=True),
        pod("other-namespace", on="b", namespace="staging"),
        pod("other-app", on="b", labels={"app.kubernetes.io/name": "cart"}, memory="1Mi"),
        pod("replica-1", on="a"),
    ]
    assert place(pod("replica-2", spread="DoNotSchedule"), nodes, elsewhere) == ("b", "")


def test_cordoned_and_unlabelled_nodes_are_not_preferred_by_the_spread() -> None:
    nodes = [node("a", "zone-a"), node("b", "zone-b", unschedulable=True), node("c", None)]
    assert place(pod("replica-2", spread="ScheduleAnyway"), nodes, [pod("replica-1", on="a")]) == ("a", "")


def critical(name: str, memory: str = "256Mi") -> dict[str, Any]:
    made = pod(name, labels={"app.kubernetes.io/name": "cluster-autoscaler"}, memory=memory)
    made["spec"]["priorityClassName"] = "system-cluster-critical"
    return made


def aged(made: dict[str, Any], stamp: str) -> dict[str, Any]:
    made["metadata"]["creationTimestamp"] = stamp
    return made


def test_a_critical_pod_that_fits_nowhere_preempts_the_newest_ordinary_pod_on_one_node() -> None:
    nodes = [node("a", "zone-a", memory="1Gi"), node("b", "zone-b", memory="1Gi")]
    running = [
        aged(pod("old", on="a", memory="512Mi"), "2026-12-06T10:00:00Z"),
        aged(pod("new", on="a", memory="512Mi"), "2026-12-06T11:00:00Z"),
        *(aged(pod(f"b-{n}", on="b"), "2026-12-06T12:00:00Z") for n in range(4)),  # two must go
    ]
    autoscaler = critical("autoscaler", memory="512Mi")
    assert place(autoscaler, nodes, running)[0] is None
    found = preemption(autoscaler, nodes, running)
    assert found is not None
    assert (found[0], [v["metadata"]["name"] for v in found[1]]) == ("a", ["new"])


def test_an_ordinary_pod_preempts_nothing_and_pods_already_going_are_not_victims() -> None:
    nodes = [node("a", "zone-a", memory="1Gi")]
    full = [pod("there", on="a", memory="1Gi")]
    assert preemption(pod("ordinary"), nodes, full) is None
    going = [pod("there", on="a", memory="1Gi", deleting=True)]
    assert preemption(critical("autoscaler"), nodes, going) == ("a", [])

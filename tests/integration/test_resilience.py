"""Faults carried out through the stage's own Kubernetes and AWS APIs while shoppers keep checking out:
a killed pod of every service is replaced with no failed checkout; a node drained by lowering the node
group's desired size moves its pods within their disruption budgets (those one node has no room for wait,
unschedulable, until the node group grows again); a restarted Kafka broker loses no order.

These tests disturb the stage, so they run after every other test of the suite (see plugin.py), and each
leaves the stage as the deploy declared it."""

from __future__ import annotations

import time

import pytest
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import Node, Pod
from lightkube.resources.policy_v1 import PodDisruptionBudget

from infra.aws.eks import node_group_name
from infra.model import SERVICE_NAMES
from tests.integration.load import CheckoutLoad
from tests.integration.observe import (
    CONSUMER_GROUPS,
    NAME_LABEL,
    ready,
    reviewed,
    service_pods,
    stored_orders,
    wait_for_no_lag,
    workload_available,
)
from tests.integration.stages import Stage
from tests.support.waiting import eventually

pytestmark = pytest.mark.disruptive

REPLACED_SECONDS = 180
DRAIN_SECONDS = 300
SAMPLE_SECONDS = 0.25


def all_available(stage: Stage) -> bool:
    kube = stage.kube()
    names = [d.metadata.name for d in kube.list(Deployment, namespace=stage.namespace) if d.metadata]
    return all(workload_available(stage, Deployment, name) for name in names) and workload_available(
        stage, StatefulSet, "kafka"
    )


def wait_for_a_settled_stage(stage: Stage) -> None:
    eventually(
        lambda: all_available(stage), timeout=REPLACED_SECONDS, interval=1, what="every workload available"
    )


def test_a_killed_pod_of_every_service_is_replaced_with_no_failed_checkout(stage: Stage) -> None:
    wait_for_a_settled_stage(stage)
    kube = stage.kube()
    with CheckoutLoad(stage.shop_url, shoppers=2, max_seconds=900, max_checkouts=3000) as load:
        eventually(lambda: len(load.placed) >= 3, timeout=60, what="the load's first orders")
        for service in SERVICE_NAMES:
            before = {p.metadata.name for p in service_pods(stage, service) if p.metadata}
            victim = sorted(before)[0]
            kube.delete(Pod, victim, namespace=stage.namespace)

            def replaced(s: str = service, old: set[str] = before) -> bool:
                fresh = [p for p in service_pods(stage, s) if p.metadata and p.metadata.name not in old]
                return (
                    bool(fresh)
                    and all(ready(p) for p in fresh)
                    and workload_available(stage, Deployment, stage.live_deployment(s))
                )

            try:
                eventually(replaced, timeout=REPLACED_SECONDS, interval=0.5)
            except AssertionError:
                raise AssertionError(
                    f"{service}'s pod {victim} not replaced within {REPLACED_SECONDS}s (live colour "
                    f"{stage.live_deployment(service)}): {pod_states(stage, service)}; "
                    f"{pending_reasons(stage, service)}"
                ) from None
        placed_while_killing = len(load.placed)
    assert load.failures == [], (
        f"{len(load.failures)} of {load.attempts} checkouts failed: {load.failures[:5]}"
    )
    assert placed_while_killing >= len(SERVICE_NAMES), "the load placed too few orders to prove anything"


def budgets(stage: Stage) -> list[tuple[str, int, int]]:
    """Each PodDisruptionBudget's name, healthy pods and the healthy pods it requires."""
    found = []
    for pdb in stage.kube().list(PodDisruptionBudget, namespace=stage.namespace):
        if pdb.metadata and pdb.status:
            found.append((pdb.metadata.name or "", pdb.status.currentHealthy, pdb.status.desiredHealthy))
    return found


def pod_states(stage: Stage, service: str) -> str:
    """Where each pod of `service` is and how it is: what a broken budget's message needs to be read."""
    pods = stage.kube().list(Pod, namespace=stage.namespace, labels={NAME_LABEL: service})
    return ", ".join(
        f"{p.metadata.name} on {p.spec.nodeName or '-'}: "
        + ("deleting" if p.metadata.deletionTimestamp else "ready" if ready(p) else "not ready")
        for p in pods
        if p.metadata and p.spec
    )


def pending_reasons(stage: Stage, service: str) -> str:
    """Why each of `service`'s pods that is not Ready is not: its conditions' and containers' reasons."""
    reasons = []
    for pod in stage.kube().list(Pod, namespace=stage.namespace, labels={NAME_LABEL: service}):
        if pod.metadata is None or pod.status is None or ready(pod):
            continue
        why = [
            f"{c.type}={c.status} {c.reason or ''} {c.message or ''}".strip()
            for c in pod.status.conditions or []
        ]
        why += [
            f"{c.name}: {c.state.waiting.reason} {c.state.waiting.message or ''}".strip()
            for c in pod.status.containerStatuses or []
            if c.state and c.state.waiting
        ]
        reasons.append(f"{pod.metadata.name} ({pod.status.phase}): {'; '.join(why) or 'no conditions'}")
    return ", ".join(reasons) or "every pod Ready"


def unschedulable(pod: Pod) -> bool:
    """Whether the scheduler found no node with room for the pod (what a cluster autoscaler acts on)."""
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(
        c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable" for c in conditions
    )


def scale_node_group(stage: Stage, desired: int) -> None:
    settings = stage.settings
    stage.aws("eks").update_nodegroup_config(
        clusterName=settings.cluster_name,
        nodegroupName=node_group_name(settings),
        scalingConfig={"desiredSize": desired},
    )


def test_a_node_drained_through_the_aws_api_moves_its_pods_within_their_disruption_budgets(
    stage: Stage,
) -> None:
    if not stage.nodes_follow_node_group:
        pytest.skip(f"the {stage.name} stage's nodes do not follow the EKS node group")
    wait_for_a_settled_stage(stage)
    kube = stage.kube()
    group = stage.aws("eks").describe_nodegroup(
        clusterName=stage.settings.cluster_name, nodegroupName=node_group_name(stage.settings)
    )["nodegroup"]
    desired = group["scalingConfig"]["desiredSize"]
    assert desired - 1 >= group["scalingConfig"]["minSize"], "the node group is at its minimum already"
    # by uid: a node the group adds back may take the name of the one drained (its slot's address)
    nodes = {n.metadata.uid: n.metadata.name for n in kube.list(Node) if n.metadata}
    pods_on: dict[str, set[str]] = {}
    for pod in kube.list(Pod, namespace=stage.namespace):
        if pod.spec and pod.metadata:
            pods_on.setdefault(pod.spec.nodeName or "", set()).add(pod.metadata.uid or "")

    scale_node_group(stage, desired - 1)
    broken: list[str] = []
    deadline = time.monotonic() + DRAIN_SECONDS
    try:
        # the cluster autoscaler may add a node for the evicted pods before the drained one is gone
        while nodes.keys() <= (remaining := {n.metadata.uid for n in kube.list(Node) if n.metadata}):
            broken += [
                f"{name}: {healthy} < {wanted} ({pod_states(stage, name)})"
                for name, healthy, wanted in budgets(stage)
                if healthy < wanted
            ]
            assert time.monotonic() < deadline, f"no node was drained within {DRAIN_SECONDS}s"
            time.sleep(SAMPLE_SECONDS)
        [gone] = [nodes[uid] for uid in nodes.keys() - remaining]
        assert broken == [], f"disruption budgets broken during the drain: {list(dict.fromkeys(broken))[:5]}"
        assert pods_on.get(gone), f"the drained node {gone} ran none of the shop's pods"
        before = set().union(*pods_on.values())

        def replacements() -> list[Pod]:
            pods = [p for p in kube.list(Pod, namespace=stage.namespace) if p.spec and p.metadata]
            left = [p.metadata.name for p in pods if p.metadata.uid in pods_on[gone]]
            assert left == [], f"pods left on {gone}: {left}"
            return [p for p in pods if p.metadata.uid not in before]

        eventually(
            lambda: any(p.spec.nodeName and ready(p) for p in replacements()),
            timeout=REPLACED_SECONDS,
            what="an evicted pod running again on the remaining node",
        )
        for pod in replacements():
            if not pod.spec.nodeName:
                assert unschedulable(pod), f"{pod.metadata.name} is pending, not for lack of capacity"
    finally:
        scale_node_group(stage, desired)
        eventually(
            lambda: len(list(kube.list(Node))) == desired,
            timeout=DRAIN_SECONDS,
            what=f"{desired} nodes again",
        )
        wait_for_a_settled_stage(stage)


# Long: it first waits for the consumers to work off what the earlier tests ordered, which at today's
# consumer speed takes minutes after the pod-kill test (see tests/bench/RESULTS.md); alone it takes ~70 s.
@pytest.mark.long
@pytest.mark.timeout(1200)
def test_a_restarted_kafka_broker_loses_no_order(stage: Stage) -> None:
    wait_for_a_settled_stage(stage)
    kube = stage.kube()
    [broker] = [
        p for p in kube.list(Pod, namespace=stage.namespace, labels={"app.kubernetes.io/name": "kafka"})
    ]
    assert broker.metadata is not None
    # the consumers first work off what the earlier tests ordered, so that this test's orders are not
    # queued behind it when their bound starts
    for group in CONSUMER_GROUPS:
        wait_for_no_lag(stage, group, timeout=600)
    with CheckoutLoad(stage.shop_url, shoppers=2, max_seconds=300, max_checkouts=1000) as load:
        eventually(lambda: len(load.placed) >= 5, timeout=60, what="orders before the restart")
        kube.delete(Pod, broker.metadata.name or "", namespace=stage.namespace)

        def restarted() -> bool:
            pods = service_pods(stage, "kafka")
            return any(p.metadata and p.metadata.uid != broker.metadata.uid and ready(p) for p in pods)

        eventually(restarted, timeout=REPLACED_SECONDS, interval=0.5, what="the broker back")
        after_restart = len(load.placed)
        eventually(
            lambda: len(load.placed) >= after_restart + 5, timeout=120, what="orders after the restart"
        )
    placed = list(load.placed)
    eventually(
        lambda: set(placed) <= stored_orders(stage, placed),
        timeout=120,
        interval=1,
        what=f"all {len(placed)} orders in the orders table",
    )
    eventually(
        lambda: set(placed) <= reviewed(stage, placed),
        timeout=120,
        interval=1,
        what=f"all {len(placed)} orders reviewed by fraud-detection",
    )
    wait_for_a_settled_stage(stage)

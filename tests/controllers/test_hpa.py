"""The HorizontalPodAutoscaler controller in-process with a `Store`: `reconcile()` driven by hand on a fake
clock, with fake usage samples (the measuring is the kubelet's, tested with it). Proves upstream's
algorithm: scaling up and down by cpu utilization and by memory average value, the 10% tolerance,
min/max and the scale-up rate, the scale-down stabilization window (default and from `behavior`), cpu
ignoring pods not yet Ready, and the status, conditions and events a user reads. Then, on a real local
cluster, `kubectl autoscale` on a Deployment whose pod burns cpu scales it up, and `kubectl top` shows the
usage it acted on."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from containers.nodestore import ImageStore
from kube.quantity import format_cpu, format_memory, memory_bytes, parse_quantity
from sim.controllers.hpa import HorizontalPodAutoscalerController
from sim.k8s import conversion, resources
from sim.k8s.store import Store
from tests.conftest import BuiltImage
from tests.support.cluster import Cluster, get_json, poll, start_cluster

pytestmark = pytest.mark.timeout(60)

PODS = resources.by_key("pods")
HPAS = resources.by_key("horizontalpodautoscalers.autoscaling")
EVENTS = resources.by_key("events")
KINDS = {
    "Deployment": resources.by_key("deployments.apps"),
    "ReplicaSet": resources.by_key("replicasets.apps"),
    "StatefulSet": resources.by_key("statefulsets.apps"),
}
NS = "default"
SYNC = 15.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """A store with a scale target `web`, its pods and their usage, and the HPA controller."""

    def __init__(self, kind: str = "Deployment") -> None:
        self.store = Store()
        self.clock = Clock()
        self.usage: dict[str, dict[str, str]] = {}
        self.rt = KINDS[kind]
        self.kind = kind
        self.hpa = HorizontalPodAutoscalerController(
            self.store, self.samples, sync_seconds=SYNC, clock=self.clock
        )

    def samples(self) -> list[dict[str, Any]]:
        """The usage as the node agent reports it (metrics-server's units: nanocores and KiB)."""
        return [
            {
                "metadata": {"name": name, "namespace": NS},
                "containers": [
                    {
                        "name": "app",
                        "usage": {
                            "cpu": format_cpu(float(parse_quantity(usage["cpu"]))),
                            "memory": format_memory(memory_bytes(usage["memory"])),
                        },
                    }
                ],
            }
            for name, usage in self.usage.items()
        ]

    def target(self, replicas: int, unready: int = 0) -> None:
        """The target and its pods `web-0`...; the last `unready` of them not Ready."""
        self.store.create(
            self.rt,
            {
                "apiVersion": "apps/v1",
                "kind": self.kind,
                "metadata": {"name": "web", "namespace": NS},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "app", "image": "web"}]},
                    },
                },
            },
            NS,
        )
        for i in range(replicas):
            self.pod(f"web-{i}", ready=i < replicas - unready)

    def pod(self, name: str, ready: bool = True, cpu: str = "100m", memory: str = "100Mi") -> None:
        self.store.create(
            PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": NS, "labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "web",
                            "resources": {"requests": {"cpu": cpu, "memory": memory}},
                        }
                    ]
                },
            },
            NS,
        )
        pod = self.store.get(PODS, NS, name)
        pod["status"] = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
        self.store.update(PODS, NS, name, pod, subresource="status")

    def use(self, cpu: str = "0", memory: str = "0", *names: str) -> None:
        for name in names or [p["metadata"]["name"] for p in self.store.iter_objects(PODS, NS)]:
            self.usage[name] = {"cpu": cpu, "memory": memory}

    def autoscaler(self, metric: Mapping[str, Any], lo: int = 1, hi: int = 10, **spec: Any) -> None:
        self.store.create(
            HPAS,
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web", "namespace": NS},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": self.kind, "name": "web"},
                    "minReplicas": lo,
                    "maxReplicas": hi,
                    "metrics": [{"type": "Resource", "resource": metric}],
                    **spec,
                },
            },
            NS,
        )

    def sync(self) -> dict[str, Any]:
        """One sync period later: a pass, and the HPA as it stands."""
        self.clock.now += SYNC
        self.hpa.reconcile()
        return self.store.get(HPAS, NS, "web")

    @property
    def replicas(self) -> int:
        return int(self.store.get(self.rt, NS, "web")["spec"]["replicas"])

    def condition(self, hpa: Mapping[str, Any], kind: str) -> tuple[str, str, str]:
        found = next(c for c in hpa["status"]["conditions"] if c["type"] == kind)
        return found["status"], found["reason"], found["message"]

    def events(self) -> list[tuple[str, str]]:
        return [(e["reason"], e["message"]) for e in self.store.iter_objects(EVENTS, NS)]


def cpu_utilization(percent: int) -> dict[str, Any]:
    return {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": percent}}


def memory_average(value: str) -> dict[str, Any]:
    return {"name": "memory", "target": {"type": "AverageValue", "averageValue": value}}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_cpu_above_target_scales_up_with_status_conditions_and_event(kind: str) -> None:
    rig = Rig(kind)
    rig.target(2)
    rig.use(cpu="150m")
    rig.autoscaler(cpu_utilization(100))
    hpa = rig.sync()
    assert rig.replicas == 3  # ceil(2 * 150% / 100%)
    status = hpa["status"]
    assert status["desiredReplicas"] == 3
    assert status["lastScaleTime"]
    assert status["currentMetrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "current": {"averageUtilization": 150, "averageValue": "150m"}},
        }
    ]
    assert rig.condition(hpa, "AbleToScale") == (
        "True",
        "SucceededRescale",
        "the HPA controller was able to update the target scale to 3",
    )
    assert rig.condition(hpa, "ScalingActive") == (
        "True",
        "ValidMetricFound",
        "the HPA was able to successfully calculate a replica count from cpu resource utilization "
        "(percentage of request)",
    )
    assert rig.condition(hpa, "ScalingLimited")[:2] == ("False", "DesiredWithinRange")
    assert (
        "SuccessfulRescale",
        "New size: 3; reason: cpu resource utilization (percentage of request) above target",
    ) in rig.events()
    # served as autoscaling/v1 too, with the cpu utilization it measured
    v1 = conversion.from_storage(conversion.HPA_V1, hpa)  # type: ignore[arg-type]
    assert v1["status"]["currentCPUUtilizationPercentage"] == 150
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 100


def test_memory_average_value_scales_down_after_the_default_stabilization_window() -> None:
    rig = Rig()
    rig.target(4)
    rig.use(memory="100Mi")
    rig.autoscaler(memory_average("100Mi"))
    hpa = rig.sync()
    assert rig.replicas == 4
    assert hpa["status"]["currentMetrics"][0]["resource"]["current"] == {"averageValue": str(100 * 2**20)}
    assert rig.condition(hpa, "AbleToScale")[1] == "ReadyForNewScale"

    rig.use(memory="20Mi")
    hpa = rig.sync()
    assert rig.replicas == 4, "scaled down inside the 300 s stabilization window"
    assert rig.condition(hpa, "AbleToScale") == (
        "True",
        "ScaleDownStabilized",
        "recent recommendations were higher than current one, applying the highest recent recommendation",
    )
    rig.clock.now += 300
    rig.sync()
    assert rig.replicas == 1  # ceil(4 * 20Mi / 100Mi)
    assert ("SuccessfulRescale", "New size: 1; reason: All metrics below target") in rig.events()


def test_a_stabilization_window_set_in_behavior_is_honoured() -> None:
    rig = Rig()
    rig.target(4)
    rig.use(cpu="100m")
    rig.autoscaler(cpu_utilization(100), behavior={"scaleDown": {"stabilizationWindowSeconds": 30}})
    rig.sync()
    rig.use(cpu="50m")
    rig.sync()
    assert rig.replicas == 4  # the recommendation of 15 s ago (4) still holds
    rig.sync()
    rig.sync()
    assert rig.replicas == 2  # both older than 30 s now


def test_within_the_tolerance_nothing_changes_beyond_it_it_scales() -> None:
    rig = Rig()
    rig.target(4)
    rig.use(cpu="108m")
    rig.autoscaler(cpu_utilization(100))
    hpa = rig.sync()
    assert rig.replicas == 4
    assert hpa["status"]["desiredReplicas"] == 4
    assert "lastScaleTime" not in hpa["status"]
    rig.use(cpu="115m")
    rig.sync()
    assert rig.replicas == 5  # ceil(4 * 1.15)


def test_bounds_max_min_and_the_scale_up_rate() -> None:
    rig = Rig()
    rig.target(2)
    rig.use(cpu="1")
    rig.autoscaler(cpu_utilization(50), lo=2, hi=20)
    hpa = rig.sync()
    assert rig.replicas == 4  # wanted 40: at most double (or 4) per sync without `behavior`
    assert rig.condition(hpa, "ScalingLimited") == (
        "True",
        "ScaleUpLimit",
        "the desired replica count is increasing faster than the maximum scale rate",
    )

    small = Rig()
    small.target(4)
    small.use(cpu="1")
    small.autoscaler(cpu_utilization(50), lo=2, hi=5)
    hpa = small.sync()
    assert small.replicas == 5
    assert small.condition(hpa, "ScalingLimited") == (
        "True",
        "TooManyReplicas",
        "the desired replica count is more than the maximum replica count",
    )
    small.use(cpu="0")
    small.clock.now += 400
    hpa = small.sync()
    assert small.replicas == 2
    assert small.condition(hpa, "ScalingLimited") == (
        "True",
        "TooFewReplicas",
        "the desired replica count is less than the minimum replica count",
    )


def test_cpu_ignores_pods_not_yet_ready_memory_does_not() -> None:
    for metric, expected in (("cpu", 3), ("memory", 6)):
        rig = Rig()
        rig.target(3, unready=1)
        rig.use("100m", "100Mi", "web-0", "web-1")
        rig.use("400m", "400Mi", "web-2")  # a pod starting up burns cpu: no reason to scale
        rig.autoscaler({"name": metric, "target": {"type": "Utilization", "averageUtilization": 100}})
        hpa = rig.sync()
        assert rig.replicas == expected, metric
        shown = hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
        assert shown == (100 if metric == "cpu" else 200)


def test_a_resync_waits_for_the_sync_period() -> None:
    rig = Rig()
    rig.target(2)
    rig.use(cpu="100m")
    rig.autoscaler(cpu_utilization(100))
    rig.sync()
    rig.use(cpu="300m")
    rig.clock.now += SYNC / 3
    rig.hpa.reconcile()
    assert rig.replicas == 2
    rig.sync()
    assert rig.replicas == 4


def test_without_metrics_scaling_is_inactive_and_said_why() -> None:
    rig = Rig()
    rig.target(2)
    rig.autoscaler(cpu_utilization(80))
    hpa = rig.sync()
    assert rig.replicas == 2
    message = (
        "failed to get cpu utilization: unable to get metrics for resource cpu: "
        "no metrics returned from resource metrics API"
    )
    assert rig.condition(hpa, "ScalingActive") == (
        "False",
        "FailedGetResourceMetric",
        f"the HPA was unable to compute the replica count: {message}",
    )
    assert rig.condition(hpa, "AbleToScale")[:2] == ("True", "SucceededGetScale")
    assert ("FailedComputeMetricsReplicas", message) in rig.events()


def test_a_missing_target_cannot_be_scaled() -> None:
    rig = Rig()
    rig.autoscaler(cpu_utilization(80))
    hpa = rig.sync()
    assert rig.condition(hpa, "AbleToScale") == (
        "False",
        "FailedGetScale",
        'the HPA controller was unable to get the target\'s current scale: deployments.apps "web" not found',
    )


def test_a_missing_request_is_reported() -> None:
    rig = Rig()
    rig.target(1)
    rig.use(cpu="100m")
    rig.autoscaler({"name": "ephemeral-storage", "target": {"type": "Utilization", "averageUtilization": 50}})
    hpa = rig.sync()
    status, reason, message = rig.condition(hpa, "ScalingActive")
    assert (status, reason) == ("False", "FailedGetResourceMetric")
    assert "missing request for ephemeral-storage in container app of Pod web-0" in message


# -- on a real local cluster: usage measured by the node agent, the HPA made by `kubectl autoscale`

POD_CIDR = "127.102.0.0/16"
BURN_SECONDS = 90  # at most: the test deletes the pods when it ends
BURN = (
    f"import time\nend = time.time() + {BURN_SECONDS}\nwhile time.time() < end:\n    pass\ntime.sleep(3600)\n"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, image_store: ImageStore) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("hpa"), image_store, POD_CIDR, nodes=("node-1", "node-2"))
    try:
        yield running
    finally:
        running.process.stop(grace=20)


@pytest.mark.timeout(300)
def test_an_hpa_scales_up_a_deployment_whose_pods_burn_cpu(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    kubectl = cluster.kubectl
    container = {
        "name": "burn",
        "image": payment_image.reference,
        "command": ["python", "-c", BURN],
        "resources": {"requests": {"cpu": "200m"}},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "burn", "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "burn"}},
            "template": {
                "metadata": {"labels": {"app": "burn"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
            },
        },
    }
    try:
        kubectl("apply", "-f", "-", input=json.dumps(deployment))
        kubectl("rollout", "status", "deployment/burn", "--timeout=60s")
        time.sleep(2)  # a usage sample or two of the busy pod
        kubectl("autoscale", "deployment", "burn", "--min=1", "--max=2", "--cpu-percent=50")

        def scaled() -> dict[str, Any] | None:
            hpa = get_json(kubectl, "hpa", "burn")
            return hpa if hpa.get("status", {}).get("desiredReplicas") == 2 else None

        hpa = poll(scaled, within=45)
        assert hpa, get_json(kubectl, "hpa", "burn")
        assert get_json(kubectl, "deployment", "burn")["spec"]["replicas"] == 2
        (metric,) = hpa["status"]["currentMetrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["current"]["averageUtilization"] > 50
        assert re.search(r"cpu: \d+%/50%", kubectl("get", "hpa", "burn")), kubectl("get", "hpa", "burn")
        conditions = {c["type"]: (c["status"], c["reason"]) for c in hpa["status"]["conditions"]}
        assert conditions["ScalingActive"] == ("True", "ValidMetricFound")
        assert conditions["ScalingLimited"] == ("True", "TooManyReplicas")
        events = get_json(kubectl, "events", "--field-selector", "involvedObject.name=burn")["items"]
        rescales = [e["message"] for e in events if e["reason"] == "SuccessfulRescale"]
        assert rescales == [
            "New size: 2; reason: cpu resource utilization (percentage of request) above target"
        ]
        v1 = json.loads(
            kubectl("get", "--raw", f"/apis/autoscaling/v1/namespaces/{NS}/horizontalpodautoscalers/burn")
        )
        assert v1["status"]["currentCPUUtilizationPercentage"] > 50
        kubectl("rollout", "status", "deployment/burn", "--timeout=60s")

        # the same measurements serve metrics.k8s.io: `kubectl top`
        top = kubectl("top", "pod", "-l", "app=burn", "--no-headers").splitlines()
        assert len(top) == 2, top
        busiest = max(int(line.split()[1].removesuffix("m")) for line in top)
        assert busiest > 100, top  # the first pod still burns close to a core
        nodes = kubectl("top", "node", "--no-headers").splitlines()
        assert sorted(line.split()[0] for line in nodes) == ["node-1", "node-2"]
    finally:
        kubectl("delete", "hpa", "burn", "--ignore-not-found")
        kubectl("delete", "deployment", "burn", "--ignore-not-found", "--timeout=60s")

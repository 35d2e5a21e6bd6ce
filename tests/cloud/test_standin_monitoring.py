"""The monitoring's stand-ins: Alertmanager (Debian's `prometheus-alertmanager`), the blackbox exporter
(Debian's `prometheus-blackbox-exporter`), kube-state-metrics (a program of the local cloud's) and the Python
base image (the host's Python, for the monitoring's own programs).

The model's own objects run as pods of a local cluster, through the kubelet, its mounts and its resolver:
kube-state-metrics reports the cluster's objects as kube-state-metrics does; an alert posted to Alertmanager
reaches the receiver, firing, then resolved. The synthetic monitor and the blackbox exporter run from their
stand-ins' run specs against the shop's real services: the journey buys, the probes succeed, a failure flag
fails the step it should.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from containers.nodestore import ImageStore
from containers.nodestore.errors import ImageError
from infra.model import images, synthetic
from services.common.flag_contract import Flag
from sim.standins import table as standins
from sim.standins.table import Placement
from sim.supervisor.process import ManagedProcess, http_ok
from sim.supervisor.state import STATE_FILE
from tests.support.cluster import Cluster, get_json, poll, start_cluster
from tests.support.shop import FlagsFile, Shop
from tests.unit.model_configs import LOCAL, find, render_with

#: this module's cluster gives its pods and Services addresses in 127.78.0.0/16; its own processes 127.79.x
CLUSTER_CIDR = "127.78.0.0/16"
OWN_HOST = "127.79.0.10"
FAST = 0.1
MONITORING = ("alertmanager", "alert-receiver", "kube-state-metrics")

needs_binaries = pytest.mark.skipif(
    shutil.which("prometheus-alertmanager") is None or shutil.which("prometheus-blackbox-exporter") is None,
    reason="Debian's prometheus-alertmanager and prometheus-blackbox-exporter are not installed",
)


def test_the_images_resolve_to_their_stand_ins(tmp_path: Path) -> None:
    names = {
        images.ALERTMANAGER: "alertmanager",
        images.BLACKBOX_EXPORTER: "blackbox-exporter",
        images.KUBE_STATE_METRICS: "kube-state-metrics",
        images.PYTHON: "python",
    }
    for reference, name in names.items():
        standin = standins.find(reference)
        assert standin is not None
        assert standin.name == name
    python = standins.resolve(images.PYTHON, Placement("127.79.0.2"), tmp_path)
    assert python is not None
    mounted = python.with_mounts({"/opt/shopstack": tmp_path / "programs"})
    assert mounted.command(["python3", "/opt/shopstack/probe.py", "--x"], None) == [
        sys.executable,
        str(tmp_path / "programs" / "probe.py"),
        "--x",
    ]
    with pytest.raises(ImageError, match="runs python programs only"):
        mounted.command(["bash", "-c", "echo"], None)
    assert "SHOP_URL" not in python.env  # outside a local cloud there is no ALB to give


def test_the_python_stand_in_gives_the_local_albs_address(tmp_path: Path) -> None:
    state = {"components": [{"name": "alb", "state": "started", "address": "http://127.0.0.1:18080"}]}
    (tmp_path / STATE_FILE).write_text(json.dumps(state))
    spec = standins.resolve(
        images.PYTHON, Placement("127.79.0.2", cloud_state=str(tmp_path)), tmp_path / "root"
    )
    assert spec is not None
    assert spec.env["SHOP_URL"] == "http://127.0.0.1:18080"


# --- the model's alerting and kube-state-metrics as pods of a local cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("prometheus-alertmanager") is None:
        pytest.skip("Debian's prometheus-alertmanager is not installed")
    workdir = tmp_path_factory.mktemp("monitoring-standins")
    running = start_cluster(workdir, ImageStore(workdir / "images"), CLUSTER_CIDR)
    try:
        objects = render_with(LOCAL, alert_time_scale=FAST)
        wanted = [find(objects, "Namespace", "shopstack")]
        wanted += [o for o in objects if o["metadata"]["labels"]["app.kubernetes.io/name"] in MONITORING]
        manifest = "\n".join(json.dumps(o) for o in wanted)
        running.kubectl(
            "apply", "--server-side", "--field-manager=shopstack-deploy", "-f", "-", input=manifest
        )
        for name in MONITORING:
            running.kubectl("-n", "shopstack", "rollout", "status", f"deployment/{name}", "--timeout=90s")
        yield running
    finally:
        running.process.stop(grace=10)


def pod_url(cluster: Cluster, name: str, port: int) -> str:
    pods = get_json(cluster.kubectl, "-n", "shopstack", "pods", "-l", f"app.kubernetes.io/name={name}")
    (pod,) = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    return f"http://{pod['status']['podIP']}:{port}"


def metric_lines(url: str) -> list[str]:
    return [
        line for line in httpx.get(url, timeout=10).text.splitlines() if line and not line.startswith("#")
    ]


def test_kube_state_metrics_reports_the_namespaces_objects(cluster: Cluster) -> None:
    broken = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "broken", "namespace": "shopstack"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "broken"}},
            "template": {
                "metadata": {"labels": {"app": "broken"}},
                "spec": {"containers": [{"name": "app", "image": "example.invalid/nothing:1"}]},
            },
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "broken", "namespace": "shopstack"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "broken"},
            "minReplicas": 2,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input="\n".join(json.dumps(o) for o in (broken, hpa)))
    url = pod_url(cluster, "kube-state-metrics", 8080) + "/metrics"

    def reported() -> list[str] | None:
        lines = metric_lines(url)
        waiting = [
            line
            for line in lines
            if line.startswith("kube_pod_container_status_waiting_reason{") and 'container="app"' in line
        ]
        return lines if len(waiting) == 2 else None

    lines = poll(reported, within=60)
    assert lines, "the broken pods' waiting reasons were not reported"
    assert 'kube_deployment_spec_replicas{namespace="shopstack",deployment="broken"} 2' in lines
    assert 'kube_deployment_status_replicas_available{namespace="shopstack",deployment="broken"} 0' in lines
    assert 'kube_deployment_spec_replicas{namespace="shopstack",deployment="alertmanager"} 1' in lines
    hpa = '{namespace="shopstack",horizontalpodautoscaler="broken"}'
    assert f"kube_horizontalpodautoscaler_spec_max_replicas{hpa} 5" in lines
    assert f"kube_horizontalpodautoscaler_spec_min_replicas{hpa} 2" in lines
    waiting = [line for line in lines if line.startswith("kube_pod_container_status_waiting_reason{")]
    assert all(
        ('reason="ErrImagePull"' in w or 'reason="ImagePullBackOff"' in w) for w in waiting if "app" in w
    )
    running = [
        line for line in lines if line.startswith("kube_pod_status_phase{") and 'phase="Running"' in line
    ]
    assert any("alertmanager" in line and line.endswith(" 1") for line in running)
    telemetry = httpx.get(pod_url(cluster, "kube-state-metrics", 8081) + "/metrics", timeout=10).text
    assert 'kube_state_metrics_stand_in_scrapes_total{result="success"}' in telemetry
    assert httpx.get(pod_url(cluster, "kube-state-metrics", 8081) + "/readyz", timeout=10).status_code == 200


def test_an_alert_reaches_the_receiver_firing_then_resolved(cluster: Cluster) -> None:
    """Alertmanager resolves the receiver's cluster name (the stand-in does, for the Go binary) and
    notifies it after the stage's group wait; a resolved alert follows within the group interval."""
    manager = pod_url(cluster, "alertmanager", 9093)
    receiver = pod_url(cluster, "alert-receiver", 8080)
    assert httpx.get(f"{manager}/-/ready", timeout=10).status_code == 200
    since = time.time()
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": "ServiceErrorRateHigh", "service": "payment", "severity": "critical"},
        "annotations": {"summary": "payment: 100% of requests fail with 5xx"},
        "startsAt": now.isoformat(),
    }
    assert httpx.post(f"{manager}/api/v2/alerts", json=[alert], timeout=10).status_code == 200

    def received(status: str) -> list[dict[str, Any]] | None:
        notifications = httpx.get(f"{receiver}/alerts", params={"since": since}, timeout=10).json()[
            "notifications"
        ]
        found = [n for n in notifications if n["status"] == status]
        return found or None

    firing = poll(lambda: received("firing"), within=30)
    assert firing, "no firing notification within 30 s (group_wait is 3 s on this clock)"
    (notification,) = firing
    assert notification["receiver"] == "alert-receiver"
    assert notification["groupLabels"] == {"alertname": "ServiceErrorRateHigh", "service": "payment"}
    assert notification["alerts"][0]["annotations"]["summary"].startswith("payment: ")

    ended = {**alert, "endsAt": (now + timedelta(seconds=1)).isoformat()}
    assert httpx.post(f"{manager}/api/v2/alerts", json=[ended], timeout=10).status_code == 200
    resolved = poll(lambda: received("resolved"), within=90)
    assert resolved, "no resolved notification within 90 s (group_interval is 30 s on this clock)"
    metrics = httpx.get(f"{receiver}/metrics", timeout=10).text
    assert 'alert_receiver_notifications_total{status="firing"} 1' in metrics


def test_the_python_stand_in_refuses_a_program_that_is_not_python(cluster: Cluster) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "shell", "namespace": "shopstack"},
        "spec": {
            "containers": [{"name": "shell", "image": images.PYTHON, "command": ["bash", "-c", "true"]}]
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def waiting() -> dict[str, Any] | None:
        statuses = get_json(cluster.kubectl, "-n", "shopstack", "pod", "shell")["status"].get(
            "containerStatuses"
        )
        state = (statuses or [{}])[0].get("state", {}).get("waiting")
        return state if state and state.get("reason") == "CreateContainerError" else None

    state = poll(waiting, within=30)
    assert state
    assert "runs python programs only" in state["message"]


# --- the synthetic monitor and the blackbox exporter, against the shop's services


def run_standin(
    name: str,
    reference: str,
    command: list[str] | None,
    args: list[str] | None,
    mounts: dict[str, Path],
    workdir: Path,
    env: dict[str, str] | None = None,
) -> ManagedProcess:
    """The container as the kubelet starts it from its image's stand-in: its mounts, its env over the
    stand-in's."""
    spec = standins.resolve(reference, Placement(OWN_HOST), workdir / "root")
    assert spec is not None
    mounted = spec.with_mounts(mounts)
    argv = mounted.command(command, args)
    return ManagedProcess(
        name, argv, workdir / f"{name}.log", env={**spec.env, **(env or {})}, cwd=spec.working_dir
    )


@pytest.fixture(scope="module")
def monitor(shop: Shop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The model's synthetic monitor pod's two containers, from their stand-ins, the shop's frontend-proxy
    as the public entrance; the journey's URL."""
    if shutil.which("prometheus-blackbox-exporter") is None:
        pytest.skip("Debian's prometheus-blackbox-exporter is not installed")
    shop.ensure("frontend-proxy")
    workdir = tmp_path_factory.mktemp("synthetic")
    objects = render_with(LOCAL, alert_time_scale=FAST)
    for config_map in ("synthetic-monitor-config", "synthetic-monitor-program"):
        (workdir / config_map).mkdir()
        for key, value in find(objects, "ConfigMap", config_map)["data"].items():
            (workdir / config_map / key).write_text(value)
    pod = find(objects, "Deployment", synthetic.SYNTHETIC)["spec"]["template"]["spec"]
    exporter, journey = pod["containers"]
    blackbox = run_standin(
        "blackbox",
        exporter["image"],
        None,
        exporter["args"],
        {synthetic.CONFIG_DIR: workdir / "synthetic-monitor-config"},
        workdir,
    )
    declared = {e["name"]: e["value"] for e in journey["env"] if "value" in e}
    env = {
        **declared,
        "POD_IP": OWN_HOST,
        "POD_NAMESPACE": "shopstack",
        "BIND_HOST": OWN_HOST,
        "BLACKBOX_ADDRESS": f"{OWN_HOST}:{synthetic.BLACKBOX_PORT}",
        "SHOP_URL": shop.url("frontend-proxy"),
        "JOURNEY_INTERVAL_SECONDS": "1",
    }
    prober = run_standin(
        "journey",
        journey["image"],
        journey["command"],
        None,
        {synthetic.PROGRAMS_DIR: workdir / "synthetic-monitor-program"},
        workdir,
        env,
    )
    blackbox.start().wait_ready(lambda: http_ok(f"http://{OWN_HOST}:9115/-/healthy"), timeout=30)
    url = f"http://{OWN_HOST}:{synthetic.JOURNEY_PORT}"
    prober.start().wait_ready(lambda: http_ok(f"{url}/healthz"), timeout=30)
    try:
        yield url
    finally:
        prober.stop()
        blackbox.stop()


def samples(url: str, name: str) -> dict[str, float]:
    """`name`'s samples at `url`: labels text -> value."""
    found = {}
    for line in metric_lines(url):
        metric, _, value = line.rpartition(" ")
        if metric == name or metric.startswith(name + "{"):
            found[metric[len(name) :]] = float(value)
    return found


def test_the_journey_buys_through_the_shop_and_the_blackbox_exporter_probes_its_pages(monitor: str) -> None:
    success = poll(lambda: samples(f"{monitor}/metrics", "synthetic_journey_success"), within=30)
    assert success == {'{journey="checkout"}': 1.0}
    steps = samples(f"{monitor}/metrics", "synthetic_journey_step_duration_seconds")
    assert set(steps) == {
        f'{{journey="checkout",step="{s}"}}' for s in ("home", "product", "add_to_cart", "checkout")
    }
    runs = samples(f"{monitor}/metrics", "synthetic_journey_runs_total")
    assert runs['{journey="checkout",result="success"}'] >= 1

    groups = httpx.get(f"{monitor}/targets", timeout=10).json()
    assert {g["labels"]["probe"] for g in groups} == set(synthetic.PROBES)
    for group in groups:
        (address,) = group["targets"]
        params = {"target": group["labels"]["__param_target"], "module": group["labels"]["__param_module"]}
        probed = httpx.get(f"http://{address}/probe", params=params, timeout=15).text
        assert "probe_success 1" in probed, f"{group['labels']['probe']}: {probed[-500:]}"
        assert "probe_http_status_code 200" in probed


def test_a_failing_cart_fails_the_journey_at_its_step(monitor: str, clean_flags: FlagsFile) -> None:
    clean_flags.set(Flag.CART_FAILURE, True)

    def failed_at_cart() -> bool:
        failures = samples(f"{monitor}/metrics", "synthetic_journey_failures_total")
        success = samples(f"{monitor}/metrics", "synthetic_journey_success")
        return (
            failures.get('{journey="checkout",step="add_to_cart"}', 0) >= 1
            and success.get('{journey="checkout"}') == 0
        )

    assert poll(failed_at_cart, within=30)
    clean_flags.clear()
    assert poll(
        lambda: samples(f"{monitor}/metrics", "synthetic_journey_success") == {'{journey="checkout"}': 1.0},
        within=30,
    )

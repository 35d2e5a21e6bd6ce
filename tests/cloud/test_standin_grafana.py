"""The Grafana stand-in: the Grafana images resolve to it, with the provisioning directory translated to
the pod's mount; run on loopback against the files the model renders, it serves the provisioned
datasource and dashboards; a bad dashboard file stops it at start with one line naming the file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from containers.nodestore import ImageStore
from infra.model import render
from sim.standins import table as standins
from sim.standins.table import Placement
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.support.cluster import Cluster, get_json, start_cluster
from tests.unit.model_configs import LOCAL, find

HOST = "127.0.0.1"
START_TIMEOUT = 30.0


def write_grafana_volumes(root: Path) -> tuple[Path, Path]:
    """The provisioning and dashboards volumes as the kubelet writes them from the rendered ConfigMaps."""
    objects = render(LOCAL)
    deployment = find(objects, "Deployment", "grafana")
    volumes = {
        v["name"]: v["configMap"]
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if "configMap" in v
    }
    provisioning, dashboards = root / "provisioning", root / "dashboards"
    data = find(objects, "ConfigMap", volumes["provisioning"]["name"])["data"]
    for item in volumes["provisioning"]["items"]:
        (provisioning / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        (provisioning / item["path"]).write_text(data[item["key"]])
    dashboards.mkdir()
    for key, value in find(objects, "ConfigMap", volumes["dashboards"]["name"])["data"].items():
        (dashboards / key).write_text(value)
    return provisioning, dashboards


def grafana_env(dashboards: Path) -> dict[str, str]:
    container = find(render(LOCAL), "Deployment", "grafana")["spec"]["template"]["spec"]["containers"][0]
    declared = {e["name"]: e["value"] for e in container["env"]}
    assert declared["SHOPSTACK_DASHBOARDS_DIR"] == "/etc/grafana/dashboards"
    # the kubelet translates the container's paths to the pod's mounts, as here
    return {"PATH": "/usr/bin:/bin", "SHOPSTACK_DASHBOARDS_DIR": str(dashboards)}


@pytest.fixture
def grafana(tmp_path: Path) -> Iterator[str]:
    provisioning, dashboards = write_grafana_volumes(tmp_path)
    port = free_port(HOST)
    argv = [sys.executable, "-m", "sim.standins.grafana", "--listen", f"{HOST}:{port}"]
    process = ManagedProcess(
        "grafana-standin",
        [*argv, "--provisioning", str(provisioning)],
        tmp_path / "grafana.log",
        env=grafana_env(dashboards),
        cwd=Path(__file__).resolve().parents[2],
    )
    url = f"http://{HOST}:{port}"
    process.start().wait_ready(lambda: http_ok(f"{url}/api/health"), timeout=START_TIMEOUT)
    try:
        yield url
    finally:
        assert process.stop() == 0


def get(url: str) -> Any:
    response = httpx.get(url, timeout=5)
    response.raise_for_status()
    return response.json()


def test_the_grafana_images_resolve_to_the_stand_in_with_the_mounted_provisioning(tmp_path: Path) -> None:
    for reference in ("grafana/grafana:11.2.0", "docker.io/grafana/grafana-oss:11.2.0"):
        standin = standins.find(reference)
        assert standin is not None
        assert standin.name == "grafana"
    image = find(render(LOCAL), "Deployment", "grafana")["spec"]["template"]["spec"]["containers"][0]["image"]
    spec = standins.resolve(image, Placement("127.76.200.9"), tmp_path / "root")
    assert spec is not None
    mounted = spec.with_mounts({"/etc/grafana/provisioning": tmp_path / "volumes" / "provisioning"})
    argv = mounted.command(None, None)
    assert argv[:3] == [sys.executable, "-m", "sim.standins.grafana"]
    assert "--listen" in argv
    assert "127.76.200.9:3000" in argv
    assert f"--provisioning={tmp_path / 'volumes' / 'provisioning'}" in argv


def test_it_serves_the_provisioned_datasource_and_dashboards(grafana: str) -> None:
    assert get(f"{grafana}/api/health")["database"] == "ok"
    (source,) = get(f"{grafana}/api/datasources")
    assert (source["name"], source["type"], source["url"]) == (
        "Prometheus",
        "prometheus",
        "http://prometheus:9090",
    )
    found = {board["uid"]: board["title"] for board in get(f"{grafana}/api/search")}
    assert found == {"shop-overview": "Shop overview", "shop-orders": "Orders and Kafka"}
    assert [b["uid"] for b in get(f"{grafana}/api/search?query=overview")] == ["shop-overview"]
    board = get(f"{grafana}/api/dashboards/uid/shop-overview")
    assert board["meta"] == {"folderTitle": "Shopstack", "provisioned": True}
    assert next(p["title"] for p in board["dashboard"]["panels"]) == "Requests per second by service"
    missing = httpx.get(f"{grafana}/api/dashboards/uid/nope", timeout=5)
    assert missing.status_code == 404
    assert "grafana_stand_in_dashboards 2" in httpx.get(f"{grafana}/metrics", timeout=5).text


@pytest.mark.parametrize(
    ("broken", "content", "named"),
    [
        ("dashboards/orders.json", '{"title": "no uid"}', "orders.json: a dashboard needs a uid and a title"),
        ("dashboards/orders.json", "{not json", "orders.json: not a JSON dashboard"),
        (
            "provisioning/datasources/datasources.yaml",
            "apiVersion: 2\n",
            "datasources.yaml: apiVersion must be 1",
        ),
    ],
)
def test_a_bad_file_stops_it_at_start_with_one_line(
    tmp_path: Path, broken: str, content: str, named: str
) -> None:
    provisioning, dashboards = write_grafana_volumes(tmp_path)
    (tmp_path / broken).write_text(content)
    argv = [sys.executable, "-m", "sim.standins.grafana", "--listen", f"{HOST}:{free_port(HOST)}"]
    result = subprocess.run(
        [*argv, "--provisioning", str(provisioning)],
        env=grafana_env(dashboards),
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]


#: this module's cluster gives its pods and Services addresses in 127.77.0.0/16
CLUSTER_CIDR = "127.77.0.0/16"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("grafana-standin")
    running = start_cluster(workdir, ImageStore(workdir / "images"), CLUSTER_CIDR)
    try:
        yield running
    finally:
        running.process.stop(grace=10)


def test_the_rendered_grafana_runs_as_a_pod_of_the_local_cluster(cluster: Cluster) -> None:
    """The model's own Grafana objects, applied server-side: the kubelet mounts the provisioning tree
    and dashboards, translates the paths, and the stand-in becomes Ready serving the dashboards."""
    objects = render(LOCAL)
    wanted = [find(objects, "Namespace", "shopstack")]
    wanted += [o for o in objects if o["metadata"]["labels"]["app.kubernetes.io/name"] == "grafana"]
    manifest = "\n".join(json.dumps(o) for o in wanted)
    cluster.kubectl("apply", "--server-side", "--field-manager=shopstack-deploy", "-f", "-", input=manifest)
    cluster.kubectl("-n", "shopstack", "rollout", "status", "deployment/grafana", "--timeout=60s")
    pods = get_json(cluster.kubectl, "-n", "shopstack", "pods", "-l", "app.kubernetes.io/name=grafana")
    (pod,) = pods["items"]
    url = f"http://{pod['status']['podIP']}:3000"
    assert {board["uid"] for board in get(f"{url}/api/search")} == {"shop-overview", "shop-orders"}
    assert get(f"{url}/api/datasources")[0]["url"] == "http://prometheus:9090"

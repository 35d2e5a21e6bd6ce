"""The Grafana stand-in: the Grafana images resolve to it, with the provisioning directory translated to
the pod's mount; run on loopback against the files the model renders, it serves the provisioned
datasource and dashboards; a bad dashboard file stops it at start with one line naming the file."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from containers.nodestore import ImageStore
from infra.model import render
from infra.model.grafana import DASHBOARD_FILES
from sim.standins import table as standins
from sim.standins.table import Placement
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.support.cluster import Cluster, get_json, poll, start_cluster
from tests.support.waiting import until
from tests.unit.model_configs import LOCAL, find

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
#: uid -> title of the dashboards in infra/dashboards
REPOSITORY_DASHBOARDS = {
    (board := json.loads(path.read_text()))["uid"]: board["title"] for path in DASHBOARD_FILES.glob("*.json")
}


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
    sources = {s["type"]: s for s in get(f"{grafana}/api/datasources")}
    assert set(sources) == {"prometheus", "jaeger"}
    assert (sources["prometheus"]["name"], sources["prometheus"]["url"]) == (
        "Prometheus",
        "http://prometheus:9090",
    )
    assert (sources["jaeger"]["name"], sources["jaeger"]["url"]) == ("Jaeger", "http://jaeger:16686")
    found = {board["uid"]: board["title"] for board in get(f"{grafana}/api/search")}
    assert found == REPOSITORY_DASHBOARDS
    assert [b["uid"] for b in get(f"{grafana}/api/search?query=overview")] == ["shop-overview"]
    board = get(f"{grafana}/api/dashboards/uid/shop-overview")
    assert board["meta"] == {"folderTitle": "Shopstack", "provisioned": True}
    assert next(p["title"] for p in board["dashboard"]["panels"]) == "Requests per second by service"
    missing = httpx.get(f"{grafana}/api/dashboards/uid/nope", timeout=5)
    assert missing.status_code == 404
    metrics = httpx.get(f"{grafana}/metrics", timeout=5).text
    assert f"grafana_stand_in_dashboards {len(REPOSITORY_DASHBOARDS)}" in metrics


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
    assert {board["uid"] for board in get(f"{url}/api/search")} == set(REPOSITORY_DASHBOARDS)
    assert get(f"{url}/api/datasources")[0]["url"] == "http://prometheus:9090"


# --- the data source query API, against a real Prometheus (Debian's binary)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's Prometheus scraping itself every second, with a minute of samples when handed over."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus is not installed")
    workdir = tmp_path_factory.mktemp("prometheus")
    port = free_port(HOST)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "prometheus", "static_configs": [{"targets": [f"{HOST}:{port}"]}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    argv = [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}"]
    process = ManagedProcess(
        "prometheus", [*argv, f"--web.listen-address={HOST}:{port}"], workdir / "prometheus.log"
    ).start()
    url = f"http://{HOST}:{port}"
    process.wait_ready(lambda: http_ok(f"{url}/-/ready"), timeout=START_TIMEOUT)
    try:
        assert poll(lambda: len(query_range(url, "up")) >= 5, within=30)
        yield url
    finally:
        process.stop()


def query_range(prometheus: str, expr: str) -> list[Any]:
    now = time.time()
    params = {"query": expr, "start": str(now - 60), "end": str(now), "step": "1"}
    result = httpx.get(f"{prometheus}/api/v1/query_range", params=params, timeout=5).json()["data"]["result"]
    return list(result[0]["values"]) if result else []


@pytest.fixture(scope="module")
def querying_grafana(prometheus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stand-in provisioned with the model's dashboards and a Prometheus data source at `prometheus`."""
    root = tmp_path_factory.mktemp("grafana-query")
    provisioning, dashboards = write_grafana_volumes(root)
    sources = yaml.safe_load((provisioning / "datasources" / "datasources.yaml").read_text())
    for source in sources["datasources"]:
        if source["type"] == "prometheus":
            source["url"] = prometheus
            source["jsonData"]["timeInterval"] = "1s"
    (provisioning / "datasources" / "datasources.yaml").write_text(yaml.safe_dump(sources))
    port = free_port(HOST)
    argv = [sys.executable, "-m", "sim.standins.grafana", "--listen", f"{HOST}:{port}"]
    process = ManagedProcess(
        "grafana-standin",
        [*argv, "--provisioning", str(provisioning)],
        root / "grafana.log",
        env=grafana_env(dashboards),
        cwd=Path(__file__).resolve().parents[2],
    )
    url = f"http://{HOST}:{port}"
    process.start().wait_ready(lambda: http_ok(f"{url}/api/health"), timeout=START_TIMEOUT)
    try:
        yield url
    finally:
        assert process.stop() == 0


def ds_query(
    grafana: str, *queries: dict[str, Any], start: str = "now-1m", end: str = "now"
) -> httpx.Response:
    """What Grafana's frontend posts for a panel."""
    body = {
        "queries": [
            {
                "refId": "A",
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "range": True,
                "instant": False,
                "interval": "",
                "intervalMs": 1000,
                "maxDataPoints": 600,
                "utcOffsetSec": 0,
                **query,
            }
            for query in queries
        ],
        "from": start,
        "to": end,
    }
    return httpx.post(f"{grafana}/api/ds/query", json=body, timeout=30)


def test_a_range_query_answers_grafanas_data_frames(querying_grafana: str) -> None:
    def last_minute() -> tuple[int, httpx.Response]:
        now = int(time.time() * 1000)
        query = {"expr": 'up{job="prometheus"}', "legendFormat": "{{job}} at {{instance}}"}
        return now, ds_query(querying_grafana, query, start=str(now - 60_000), end=str(now))

    def five_points(asked: tuple[int, httpx.Response]) -> bool:
        frames = asked[1].json()["results"]["A"]["frames"] if asked[1].status_code == 200 else []
        return bool(frames) and len(frames[0]["data"]["values"][0]) >= 5

    # Prometheus scrapes itself every second from its start: five points within seconds
    now, answer = until(last_minute, five_points, what="five seconds of Prometheus' own samples")
    assert answer.status_code == 200, answer.text
    (frame,) = answer.json()["results"]["A"]["frames"]
    schema = frame["schema"]
    assert schema["refId"] == "A"
    assert schema["meta"]["type"] == "timeseries-multi"
    assert schema["meta"]["custom"] == {"resultType": "matrix"}
    assert schema["meta"]["executedQueryString"] == 'Expr: up{job="prometheus"}\nStep: 1s'
    time_field, value_field = schema["fields"]
    assert (time_field["name"], time_field["type"], time_field["config"]) == (
        "Time",
        "time",
        {"interval": 1000},
    )
    assert value_field["labels"]["job"] == "prometheus"
    assert value_field["config"]["displayNameFromDS"].startswith("prometheus at 127.0.0.1:")
    times, values = frame["data"]["values"]
    assert len(times) == len(values) >= 5
    assert set(values) == {1}
    assert all(b - a == 1000 for a, b in itertools.pairwise(times))
    assert now - 60_000 <= times[0]
    assert times[-1] <= now


def test_grafanas_interval_variables_are_interpolated_from_the_scrape_interval(querying_grafana: str) -> None:
    expr = "sum(rate(prometheus_http_requests_total[$__rate_interval])) * 0 + $__interval_ms"
    answer = ds_query(querying_grafana, {"expr": expr})
    assert answer.status_code == 200, answer.text
    frame = answer.json()["results"]["A"]["frames"][0]
    # a minute over 600 points: Grafana's 100 ms, under the data source's 1 s scrape interval, so 1 s;
    # its rate interval: the larger of 1 s + 1 s and 4 x 1 s
    assert "[4s]" in frame["schema"]["meta"]["executedQueryString"]
    assert set(frame["data"]["values"][1]) == {1000}
    wide = ds_query(querying_grafana, {"expr": "vector($__range_s)"}, start="now-6h")
    executed = wide.json()["results"]["A"]["frames"][0]["schema"]["meta"]["executedQueryString"]
    assert "vector(21600)" in executed
    assert executed.endswith("Step: 30s")  # 6 h over 600 points: 36 s, rounded as Grafana does


def test_an_instant_query_answers_one_numeric_frame_per_series(querying_grafana: str) -> None:
    answer = ds_query(querying_grafana, {"expr": "count(up)", "instant": True, "range": False})
    (frame,) = answer.json()["results"]["A"]["frames"]
    assert frame["schema"]["meta"]["type"] == "numeric-multi"
    assert frame["data"]["values"][1] == [1]


def test_no_series_is_one_frame_without_fields(querying_grafana: str) -> None:
    answer = ds_query(querying_grafana, {"expr": 'up{job="nothing"}'})
    assert answer.status_code == 200
    (frame,) = answer.json()["results"]["A"]["frames"]
    assert frame["schema"]["fields"] == []
    assert frame["data"]["values"] == []


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ({"expr": "sum(up"}, 400, "parse error"),
        ({"expr": 'up{job="$job"}'}, 400, "$job: template variables are the frontend's to interpolate"),
        (
            {"expr": "up", "datasource": {"type": "prometheus", "uid": "nope"}},
            404,
            "data source 'nope' not found",
        ),
        ({"query": "x", "datasource": {"type": "jaeger", "uid": "jaeger"}}, 501, "does not implement jaeger"),
    ],
)
def test_a_query_that_fails_says_why_in_its_result_and_the_answer_is_400(
    querying_grafana: str, query: dict[str, Any], status: int, says: str
) -> None:
    answer = ds_query(querying_grafana, {"expr": "up", "refId": "B"}, {**query, "refId": "A"})
    assert answer.status_code == 400
    results = answer.json()["results"]
    assert results["A"]["status"] == status
    assert says in results["A"]["error"]
    assert results["B"]["status"] == 200  # the other query of the request is answered


def test_every_panel_query_of_the_repository_dashboards_is_valid_promql(querying_grafana: str) -> None:
    """Against a Prometheus without the shop's series: each query is accepted (its data is the
    integration suite's to check, against the running shop)."""
    for board in get(f"{querying_grafana}/api/search"):
        dashboard = get(f"{querying_grafana}/api/dashboards/uid/{board['uid']}")["dashboard"]
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                answer = ds_query(querying_grafana, target)
                assert answer.status_code == 200, f"{board['title']} / {panel['title']}: {answer.text}"

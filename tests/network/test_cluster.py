"""The cluster network in a real cluster process, driven by the real kubectl: two payment pods behind a
Service show in `kubectl get endpoints`; a third pod (plain `python -c`, no change to its code) reaches
the Service by every name form and sees its `PAYMENT_SERVICE_HOST`; a pod whose exec readiness probe
starts failing stops receiving connections through the ClusterIP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from containers.nodestore import ImageStore
from tests.conftest import BuiltImage
from tests.support.cluster import Cluster, get_json, payment_container, poll, start_cluster

POD_CIDR = "127.91.0.0/16"
SERVICE_CIDR = "127.92.0.0/16"

CLIENT = """
import json, os, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
out = {"env": os.environ.get("PAYMENT_SERVICE_HOST"), "port": os.environ.get("PAYMENT_SERVICE_PORT")}
for name in ("payment", "payment.default", "payment.default.svc", "payment.default.svc.cluster.local"):
    try:
        with opener.open(f"http://{name}/healthz", timeout=10) as response:
            out[name] = response.status
    except Exception as err:
        out[name] = repr(err)
print("RESULT " + json.dumps(out), flush=True)
"""

# answers every GET with the pod's name, on the pod's address (BIND_HOST, set by the kubelet)
WHOAMI = """
import http.server, os
class Name(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["HOSTNAME"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer((os.environ["BIND_HOST"], 8080), Name).serve_forever()
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("network")


@pytest.fixture(scope="module")
def cluster(workdir: Path, image_store: ImageStore) -> Iterator[Cluster]:
    running = start_cluster(workdir, image_store, POD_CIDR, extra_args=["--service-cidr", SERVICE_CIDR])
    try:
        yield running
    finally:
        running.process.stop(grace=15)


def apply(cluster: Cluster, *objects: dict[str, Any]) -> None:
    for obj in objects:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def pod(name: str, labels: dict[str, str], container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [container], **spec},
    }


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


def test_two_payment_pods_behind_a_service_answer_by_every_name_from_a_pod(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    kubectl = cluster.kubectl
    labels = {"app": "payment"}
    apply(
        cluster,
        service("payment", labels),
        pod("payment-1", labels, payment_container(payment_image.reference)),
        pod("payment-2", labels, payment_container(payment_image.reference)),
    )
    kubectl("wait", "--for=condition=Ready", "pod/payment-1", "pod/payment-2", "--timeout=60s")
    ips = sorted(get_json(kubectl, "pod", name)["status"]["podIP"] for name in ("payment-1", "payment-2"))

    def both_listed() -> str:
        table = kubectl("get", "endpoints", "payment")
        return table if all(f"{ip}:8080" in table for ip in ips) else ""

    assert poll(both_listed), kubectl("get", "endpoints", "payment")
    (slice_obj,) = get_json(kubectl, "endpointslices", "-l", "kubernetes.io/service-name=payment")["items"]
    assert sorted(e["addresses"][0] for e in slice_obj["endpoints"]) == ips
    cluster_ip = get_json(kubectl, "service", "payment")["spec"]["clusterIP"]
    assert cluster_ip.startswith("127.92.")

    client = {"name": "client", "image": payment_image.reference, "command": ["python", "-c", CLIENT]}
    apply(cluster, pod("client", {"app": "client"}, client, restartPolicy="Never"))

    def finished() -> str:
        phase = get_json(kubectl, "pod", "client")["status"].get("phase")
        return phase if phase in ("Succeeded", "Failed") else ""

    assert poll(finished, within=60) == "Succeeded", kubectl("logs", "client")
    lines = [line for line in kubectl("logs", "client").splitlines() if line.startswith("RESULT ")]
    assert lines, kubectl("logs", "client")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["env"] == cluster_ip
    assert result["port"] == "80"
    for name in ("payment", "payment.default", "payment.default.svc", "payment.default.svc.cluster.local"):
        assert result[name] == 200, (name, result)


def test_a_pod_whose_readiness_probe_fails_stops_receiving_connections(
    cluster: Cluster, workdir: Path, payment_image: BuiltImage
) -> None:
    kubectl = cluster.kubectl
    labels = {"app": "whoami"}
    whoami = {
        "name": "app",
        "image": payment_image.reference,
        "command": ["python", "-c", WHOAMI],
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    flaky = {
        **whoami,
        "volumeMounts": [{"name": "flags", "mountPath": "/flags"}],
        "readinessProbe": {"exec": {"command": ["test", "-f", "/flags/ready"]}, "periodSeconds": 1},
    }
    apply(
        cluster,
        service("whoami", labels),
        pod("steady", labels, whoami),
        pod("flaky", labels, flaky, volumes=[{"name": "flags", "emptyDir": {}}]),
    )
    kubectl("wait", "--for=condition=Ready", "pod/steady", "--timeout=60s")
    uid = get_json(kubectl, "pod", "flaky")["metadata"]["uid"]
    # the emptyDir on the host, wherever the kubelet keeps its pods' volumes
    volumes = poll(lambda: list((workdir / "kubelet").glob(f"**/default_flaky_{uid}/flags")))
    assert volumes, "the flaky pod's emptyDir was never made"
    flag = volumes[0] / "ready"
    flag.touch()
    kubectl("wait", "--for=condition=Ready", "pod/flaky", "--timeout=60s")
    cluster_ip = get_json(kubectl, "service", "whoami")["spec"]["clusterIP"]

    def answers(count: int = 6) -> set[str]:
        with httpx.Client(timeout=5, trust_env=False) as client:
            return {
                client.get(f"http://{cluster_ip}/", headers={"Connection": "close"}).text
                for _ in range(count)
            }

    assert poll(lambda: answers() == {"steady", "flaky"}), answers()

    flag.unlink()
    kubectl("wait", "--for=condition=Ready=false", "pod/flaky", "--timeout=30s")

    def flaky_not_ready() -> bool:
        endpoints = get_json(kubectl, "endpoints", "whoami")
        return [a["targetRef"]["name"] for a in endpoints["subsets"][0].get("notReadyAddresses") or []] == [
            "flaky"
        ]

    assert poll(flaky_not_ready), get_json(kubectl, "endpoints", "whoami")
    assert poll(lambda: answers() == {"steady"}), answers()
    assert answers(10) == {"steady"}

"""The load-generator image in the local cloud, as the deploy runs it: built by the project's builder, run
by the kubelet from its own layers with the host's Python 3.11 (gevent's C extensions included), from the
model's own objects (its ConfigMap, Deployment and web UI Service, the flags ConfigMap) applied
server-side. Its shoppers reach `frontend-proxy` by its Service name, here a recording stand-in that
sees their baggage and session cookie, and its statistics are read through the real `kubectl
port-forward` to its Service on 8089, as an operator would."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from containers.nodestore import ImageStore
from infra.model import render
from infra.model.common import NAME_LABEL
from infra.model.load_generator import WEB_PORT
from infra.model.services import LOAD_GENERATOR
from sim.supervisor.process import free_port
from tests.conftest import BuiltImage
from tests.support.cluster import Cluster, get_json, start_cluster
from tests.support.images import BuildFailed, build_images
from tests.support.signals import interruptible
from tests.support.waiting import eventually
from tests.unit.model_configs import LOCAL, find

#: the image's build and its first start share a machine with the rest of the suite
pytestmark = pytest.mark.timeout(600)
#: this module's cluster gives its pods and Services addresses in 127.153.0.0/16
CLUSTER_CIDR = "127.153.0.0/16"
USERS = 3
ROLLOUT_SECONDS = 180
NAMESPACE = "shopstack"
#: frontend-proxy's stand-in: answers every request with a session cookie and JSON, printing what came
RECORDER = r"""
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Recorder(BaseHTTPRequestHandler):
    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        seen = [self.command, self.path, "baggage=" + str(self.headers.get("baggage")),
                "cookie=" + str(self.headers.get("cookie"))]
        os.write(1, (" ".join(seen) + "\n").encode())  # one write per line: the threads do not interleave
        body = json.dumps({"order_id": "recorded"}).encode()
        self.send_response(201 if self.path == "/api/checkout" else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("set-cookie", "session_id=recorded-session; Path=/")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass

ThreadingHTTPServer((os.environ["BIND_HOST"], 8080), Recorder).serve_forever()
"""


@pytest.fixture(scope="module")
def load_generator_image(image_build: Path) -> BuiltImage:
    """The load-generator image, built with `python -m containers build --only load-generator`."""
    try:
        reference = build_images(image_build, ["load-generator"])[LOAD_GENERATOR]
    except BuildFailed as err:
        pytest.fail(str(err), pytrace=False)
    return BuiltImage(image_build / "oci" / LOAD_GENERATOR, reference)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, load_generator_image: BuiltImage) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("load-generator")
    store = ImageStore(workdir / "images")
    store.load(load_generator_image.layout)
    running = start_cluster(workdir, store, CLUSTER_CIDR)
    try:
        yield running
    finally:
        running.process.stop(grace=20)


def recorder(image: str) -> list[dict[str, Any]]:
    labels = {"app": "recorder"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "recorder", "namespace": NAMESPACE},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "recorder",
                                "image": image,
                                "command": ["python", "-c", RECORDER],
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "frontend-proxy", "namespace": NAMESPACE},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]},
        },
    ]


def apply(cluster: Cluster, objects: list[dict[str, Any]]) -> None:
    manifest = "\n".join(json.dumps(o) for o in objects)
    cluster.kubectl("apply", "--server-side", "--field-manager=shopstack-deploy", "-f", "-", input=manifest)


def rollout(cluster: Cluster, deployment: str) -> None:
    """`kubectl rollout status`, with room for a first start that unpacks the image on a busy machine."""
    wait = ["-n", NAMESPACE, "rollout", "status", f"deployment/{deployment}", f"--timeout={ROLLOUT_SECONDS}s"]
    cluster.kubectl.run(*wait, timeout=ROLLOUT_SECONDS + 30)


@pytest.fixture(scope="module")
def deployed(cluster: Cluster, load_generator_image: BuiltImage) -> Cluster:
    config = replace(
        LOCAL,
        images={**LOCAL.images, LOAD_GENERATOR: load_generator_image.reference},
        env={LOAD_GENERATOR: {"LOCUST_USERS": str(USERS), "LOCUST_SPAWN_RATE": str(USERS)}},
    )
    objects = render(config)
    mine = [o for o in objects if o["metadata"]["labels"].get(NAME_LABEL) == LOAD_GENERATOR]
    assert {o["kind"] for o in mine} >= {"ConfigMap", "Deployment", "Service", "ServiceAccount"}
    apply(cluster, [find(objects, "Namespace", NAMESPACE), find(objects, "ConfigMap", "flags")])
    apply(cluster, recorder(load_generator_image.reference))
    rollout(cluster, "recorder")
    apply(cluster, [o for o in mine if o["kind"] != "NetworkPolicy"])
    rollout(cluster, LOAD_GENERATOR)
    return cluster


@pytest.fixture
def forwarded(deployed: Cluster) -> Iterator[str]:
    """`kubectl port-forward svc/load-generator LOCAL:8089`: the web UI's URL on this machine."""
    local = free_port("127.0.0.1")
    kubectl = deployed.kubectl
    target = [f"svc/{LOAD_GENERATOR}", f"{local}:{WEB_PORT}", "--address", "127.0.0.1"]
    process = subprocess.Popen(
        [kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "-n", NAMESPACE, "port-forward", *target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            if f"Forwarding from 127.0.0.1:{local}" in process.stdout.readline():
                break
        yield f"http://127.0.0.1:{local}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=5)


def test_the_image_runs_in_the_local_cloud_and_reports_its_statistics_through_port_forward(
    deployed: Cluster, forwarded: str
) -> None:
    def swarming() -> dict[str, Any] | None:
        with httpx.Client(timeout=10, trust_env=False) as client:
            stats = client.get(f"{forwarded}/stats/requests").json()
        home = next((s for s in stats["stats"] if s["name"] == "/"), None)
        ready = stats["state"] == "running" and stats["user_count"] == USERS and home is not None
        return stats if ready and home["num_requests"] >= USERS else None

    stats = eventually(swarming, timeout=120, what=f"{USERS} shoppers' first requests in the statistics")
    assert stats["fail_ratio"] == 0, stats["errors"]

    (pod,) = get_json(deployed.kubectl, "-n", NAMESPACE, "pods", "-l", f"{NAME_LABEL}={LOAD_GENERATOR}")[
        "items"
    ]
    status = pod["status"]["containerStatuses"][0]
    assert status["ready"], status
    assert status["restartCount"] == 0, deployed.kubectl("-n", NAMESPACE, "logs", pod["metadata"]["name"])

    seen = deployed.kubectl("-n", NAMESPACE, "logs", "deployment/recorder").splitlines()
    requests = [line for line in seen if re.match(r"^(GET|POST) /", line)]
    assert len(requests) >= USERS
    assert all("baggage=synthetic_request=true" in line for line in requests), requests[:5]
    first_per_session = [line for line in requests if "cookie=None" in line]
    assert len(first_per_session) == USERS, "each shopper sends its session cookie after its first request"
    assert all(line.startswith("GET / ") for line in first_per_session)

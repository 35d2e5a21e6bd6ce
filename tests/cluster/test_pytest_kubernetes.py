"""A test written for pytest-kubernetes' `k8s` fixture, unchanged, runs on the local cluster: the plugin's
`k8s_manager` selects `LocalClusterManager` when no provider is named. (Not under tests/k8s: pytest-kubernetes
reads a `k8s` keyword, which a directory of that name would set, as its marker.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from sim.pytest_plugin import LocalClusterManager
from sim.supervisor.process import free_port
from tests.conftest import BuiltImage
from tests.support.cluster import payment_container


@pytest.fixture(autouse=True)
def _needs_kubectl() -> None:
    if shutil.which("kubectl") is None:  # pytest-kubernetes runs the `kubectl` on PATH
        pytest.skip("no kubectl on PATH")


def test_the_k8s_fixture_creates_uses_and_deletes_a_local_cluster(  # type: ignore[no-untyped-def]
    k8s, payment_image: BuiltImage, tmp_path: Path
) -> None:
    assert isinstance(k8s, LocalClusterManager)
    k8s.create()
    try:
        assert k8s.version() == (1, 30)
        nodes = k8s.kubectl(["get", "nodes"])
        assert sorted(n["metadata"]["name"] for n in nodes["items"]) == ["node-1", "node-2"]
        k8s.load_image(str(payment_image.layout))
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "payment", "namespace": "default"},
            "spec": {
                "terminationGracePeriodSeconds": 5,
                "containers": [payment_container(payment_image.reference)],
            },
        }
        # from a file: pytest-kubernetes pipes a dict through `echo '<yaml>'`, which loses YAML's quotes
        manifest = tmp_path / "pod.json"
        manifest.write_text(json.dumps(pod))
        k8s.apply(manifest)
        k8s.wait("pod/payment", "condition=Ready", timeout=60)
        assert k8s.kubectl(["get", "pod", "payment"])["status"]["phase"] == "Running"
        assert k8s.logs("payment")
        local = free_port("127.0.0.1")
        with (
            k8s.port_forwarding("pod/payment", local, 8080),
            httpx.Client(timeout=10, trust_env=False) as client,
        ):
            assert client.get(f"http://127.0.0.1:{local}/healthz").status_code == 200
        kubeconfig = k8s.kubeconfig
    finally:
        k8s.delete()
    assert kubeconfig is not None
    assert not kubeconfig.exists()

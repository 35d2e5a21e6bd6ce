"""Benchmark: the local cluster with its controllers and process kubelets, driven by the real kubectl.

    .venv/bin/python -m tests.bench.cluster [--layout build/oci/payment] [--max-pods 40] [--step 10]

Into a temporary directory: start `python -m sim.cluster` with one roomy node (to /readyz), apply a 2-replica
Deployment of the payment image and time it to `Available`; then scale it up `--step` pods at a time, each
step waited for (bounded), until `--max-pods` run or a step does not become Ready in time, printing the
pods held and the node's total container RSS. Without --layout, builds the payment image first.
Bounded: one server and its pods on 127.x, a fixed number of steps; everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from containers.nodestore import ImageStore
from sim.pytest_plugin import start_local_cluster
from tests.bench.kubelet import build_payment

STEP_TIMEOUT_SECONDS = 180
NODE_CAPACITY = ("cpu=64", "memory=20Gi", "pods=250")


def deployment(reference: str, replicas: int) -> dict[str, Any]:
    labels = {"app": "payment"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "payment", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "app",
                            "image": reference,
                            "env": [{"name": "PORT", "value": "8080"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": 8080},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
    binary = shutil.which("kubectl.1.30") or shutil.which("kubectl") or "kubectl"
    result = subprocess.run(
        [binary, "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return result.stdout


def node_rss_mib(url: str) -> float:
    """The node's container RSS, summed from the pods' memory usage the kubelet reports."""
    with httpx.Client(timeout=10, trust_env=False) as client:
        pods = client.get(f"{url}/api/v1/namespaces/default/pods").json()["items"]
    total = 0.0
    for pod in pods:
        for status in pod["status"].get("containerStatuses") or []:
            pid = status.get("containerID", "").removeprefix("process://")
            if pid.isdigit():
                total += _rss_kib(int(pid)) / 1024
    return total


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", type=Path)
    parser.add_argument("--max-pods", type=int, default=40)
    parser.add_argument("--step", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as temporary:
        root = Path(temporary)
        layout = args.layout or build_payment(root / "build")
        images = ImageStore(root / "images")
        reference = images.load(layout).names[1]
        capacity = [flag for item in NODE_CAPACITY for flag in ("--node-capacity", item)]
        began = time.monotonic()
        cluster = start_local_cluster(root, images, ("node-1",), "127.150.0.0/16", capacity)
        print(f"start to /readyz (node registered): {time.monotonic() - began:.2f}s")
        try:
            config = cluster.kubeconfig
            began = time.monotonic()
            kubectl(config, "apply", "-f", "-", stdin=json.dumps(deployment(reference, 2)))
            kubectl(
                config, "wait", "--for=condition=Available", "deploy/payment", "--timeout=120s", timeout=130
            )
            print(f"2-replica Deployment to Available: {time.monotonic() - began:.2f}s")
            held = 2
            while held < args.max_pods:
                want = min(held + args.step, args.max_pods)
                began = time.monotonic()
                kubectl(config, "scale", "deploy/payment", f"--replicas={want}")
                try:
                    kubectl(
                        config,
                        "rollout",
                        "status",
                        "deploy/payment",
                        f"--timeout={STEP_TIMEOUT_SECONDS}s",
                        timeout=STEP_TIMEOUT_SECONDS + 10,
                    )
                except subprocess.CalledProcessError:
                    print(f"{want} pods: not all Ready within {STEP_TIMEOUT_SECONDS}s; stopping at {held}")
                    break
                held = want
                print(
                    f"{held} pods Ready (+{args.step} in {time.monotonic() - began:.1f}s); "
                    f"container RSS {node_rss_mib(cluster.url):.0f} MiB"
                )
            print(f"pods held: {held}")
        finally:
            began = time.monotonic()
            cluster.stop()
            print(f"stop (every pod SIGTERMed): {time.monotonic() - began:.2f}s")


if __name__ == "__main__":
    main()

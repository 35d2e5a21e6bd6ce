"""A local cluster for tests (`sim.pytest_plugin.start_local_cluster`) with the real kubectl bound to its
kubeconfig; and small helpers for reading what kubectl returns."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from containers.nodestore import ImageStore
from sim.pytest_plugin import start_local_cluster
from sim.supervisor.process import ManagedProcess
from tests.k8s.conftest import Kubectl, kubectl_binary

T = TypeVar("T")


@dataclass
class Cluster:
    process: ManagedProcess
    kubectl: Kubectl
    url: str


def start_cluster(
    workdir: Path,
    images: ImageStore,
    cidr: str,
    nodes: Sequence[str] = ("node-1",),
    extra_args: Sequence[str] = (),
) -> Cluster:
    """The API server with the controllers and a process kubelet per node; pods and Services get addresses
    in `cidr` (give each test module its own, so that every pod can listen on 8080)."""
    binary = kubectl_binary()
    if binary is None:
        pytest.skip("no kubectl binary on this machine")
    running = start_local_cluster(workdir, images, nodes, cidr, extra_args)
    return Cluster(running.process, Kubectl(binary, running.kubeconfig), running.url)


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", *args, "-o", "json")))


def poll(check: Callable[[], T], within: float = 20.0) -> T:
    """`check()` until it returns something truthy (bounded); its last value on timeout, for the assert."""
    deadline = time.monotonic() + within
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(0.2)
        value = check()
    return value


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The condition of type `kind` in an object's status, or {}."""
    return next((c for c in obj["status"].get("conditions") or [] if c["type"] == kind), {})


def payment_container(image: str, **resources: Any) -> dict[str, Any]:
    """The payment service's container, ready when `/healthz` answers."""
    return {
        "name": "app",
        "image": image,
        "env": [{"name": "PORT", "value": "8080"}, {"name": "LOG_LEVEL", "value": "info"}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
        **({"resources": resources} if resources else {}),
    }


def payment_pod(image: str, name: str, **resources: Any) -> str:
    """A Pod manifest (JSON, for `kubectl apply -f -`) running the payment image."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "terminationGracePeriodSeconds": 5,
                "containers": [payment_container(image, **resources)],
            },
        }
    )

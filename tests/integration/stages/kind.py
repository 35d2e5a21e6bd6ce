"""The kind stage, for machines with a Docker engine: a kind cluster made through pytest-kubernetes and an
AWS emulator container made through testcontainers (moto's server image; LocalStack's, through
localstack-client's endpoint configuration, when LOCALSTACK_AUTH_TOKEN is set), then the same build,
deploy (`pyinfra inventory/kind.py deploy.py`) and suite as every stage.

The cluster has two worker nodes in two zones, as the node group's first two nodes would be, and
kindnet enforces NetworkPolicies. The emulator joins kind's Docker network, so the pods reach it by its
container name, and publishes its port on 127.0.0.1 only, for the deploy and the suite. The images,
built as OCI layouts, are loaded into the nodes as `kind load` does, under the names the deploy's
manifests pull; the runner reaches the shop and in-cluster Services through `kubectl port-forward`
(there is no ALB on kind).

It cannot run without Docker: `preflight` says why in one line, and the suite skips with it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from infra.aws.ecr import built_images, image_reference
from infra.stages.emulator import LOCAL_ACCOUNT_ID, kind_cluster
from sim.aws import CREDENTIALS
from sim.supervisor.process import free_port
from tests.integration.stages.base import BUILD_DIR, REPO, STAGE_LOGS, Phases
from tests.integration.stages.forwarding import ForwardedStage

INVENTORY = REPO / "inventory" / "kind.py"
LOGS = STAGE_LOGS / "kind"
CLUSTER_NAME = "pytest-shopstack"
KUBERNETES_VERSION = "1.30.8"
NETWORK = "kind"  # the Docker network kind puts its nodes on
EMULATOR_NAME = "shopstack-aws-emulator"
MOTO_IMAGE = "motoserver/moto:5.1.18"
MOTO_PORT = 5000
LOCALSTACK_IMAGE = "localstack/localstack-pro:4.10"
LOCALSTACK_PORT = 4566
ZONES = ("us-east-1a", "us-east-1b")


def preflight(env: Mapping[str, str] = os.environ) -> str | None:
    """Why the kind stage cannot run here (one line), or None when it can."""
    path = env.get("PATH", os.defpath)
    if shutil.which("kind", path=path) is None:
        return "kind stage: the `kind` binary is not installed (https://kind.sigs.k8s.io)"
    docker = shutil.which("docker", path=path)
    if docker is None:
        return "kind stage: no `docker` command"
    info = subprocess.run(
        [docker, "info"], capture_output=True, text=True, timeout=30, check=False, env={**env}
    )
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["`docker info` failed"])[-1]
        return f"kind stage: no Docker engine answers here ({reason})"
    return None


def cluster_config() -> dict[str, Any]:
    """kind's cluster configuration: a control plane and a worker in each of two zones."""
    workers = [
        {
            "role": "worker",
            "labels": {"topology.kubernetes.io/zone": zone, "node.kubernetes.io/instance-type": "t3.medium"},
        }
        for zone in ZONES
    ]
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": CLUSTER_NAME,
        "networking": {"apiServerAddress": "127.0.0.1"},
        "nodes": [{"role": "control-plane"}, *workers],
    }


@dataclass(frozen=True)
class EmulatorSpec:
    """The AWS emulator container: which image, its port, its environment, and where each side reaches it."""

    image: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    host_port: int = 0

    @property
    def runner_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.host_port}"

    @property
    def cluster_endpoint(self) -> str:
        return f"http://{EMULATOR_NAME}:{self.port}"


def emulator_spec(env: Mapping[str, str], host_port: int) -> EmulatorSpec:
    """moto's server image, or LocalStack's when LOCALSTACK_AUTH_TOKEN is set (EKS, ECR and ELBv2 are
    LocalStack's paid features); its endpoint port is where localstack-client expects it."""
    token = env.get("LOCALSTACK_AUTH_TOKEN")
    if token:
        from localstack_client.config import get_service_port

        port = int(get_service_port("s3") or LOCALSTACK_PORT)
        services = "s3,dynamodb,ec2,iam,sts,eks,ecr,elbv2,kms,logs,autoscaling"
        return EmulatorSpec(
            LOCALSTACK_IMAGE, port, {"LOCALSTACK_AUTH_TOKEN": token, "SERVICES": services}, host_port
        )
    return EmulatorSpec(MOTO_IMAGE, MOTO_PORT, {"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}, host_port)


def image_archive(layout: Path, name: str, archive: Path) -> Path:
    """An OCI archive of `layout` whose index names the image `name` (containerd's import annotation)."""
    index = json.loads((layout / "index.json").read_text())
    for manifest in index["manifests"]:
        manifest.setdefault("annotations", {})["io.containerd.image.name"] = name
    with tarfile.open(archive, "w") as tar:
        for path in sorted(layout.rglob("*")):
            if path.is_file() and path.name != "index.json":
                tar.add(path, arcname=str(path.relative_to(layout)))
        data = json.dumps(index).encode()
        info = tarfile.TarInfo("index.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return archive


class KindStage(ForwardedStage):
    name = "kind"
    enforces_network_policies = True  # kindnet enforces NetworkPolicies since kind 0.24
    has_alb = False
    nodes_follow_node_group = False

    def __init__(self, console: Console, phases: Phases, keep: bool = False) -> None:
        super().__init__(console, phases, LOGS, keep)
        self.emulator = emulator_spec(os.environ, free_port())
        self._container: Any = None
        self._cluster: Any = None

    # -- lifecycle

    def start(self) -> None:
        with self.phases.timed("up"):
            self._up()
        with self.phases.timed("build"):
            self.build()
            self._load_images()
        with self.phases.timed("deploy"):
            self.deploy()

    def _up(self) -> None:
        from pytest_kubernetes.providers import select_provider_manager
        from testcontainers.core.container import DockerContainer

        self.logs.mkdir(parents=True, exist_ok=True)
        config = self.logs / "kind-config.yaml"
        config.write_text(yaml.safe_dump(cluster_config()))
        manager = select_provider_manager("kind")(
            provider_config=str(config), kubeconfig=self.logs / "kubeconfig"
        )
        manager.create(timeout=240)
        self._cluster = manager
        container = (
            DockerContainer(self.emulator.image).with_name(EMULATOR_NAME).with_network_aliases(EMULATOR_NAME)
        )
        for key, value in self.emulator.env.items():
            container = container.with_env(key, value)
        container = container.with_bind_ports(self.emulator.port, ("127.0.0.1", self.emulator.host_port))
        container.start()
        self._container = container
        subprocess.run(["docker", "network", "connect", NETWORK, EMULATOR_NAME], check=True, timeout=60)

    def _load_images(self) -> None:
        for service, reference in sorted(built_images(self.settings).items()):
            # the manifests pull `repo@sha256:...`: containerd finds that in an image tagged `repo:...`
            repository, digest = image_reference(self.settings, service, reference).split("@")
            name = f"{repository}:{digest.removeprefix('sha256:')[:12]}"
            archive = image_archive(BUILD_DIR / "oci" / service, name, self.logs / f"{service}.oci.tar")
            self.step(
                f"kind load {service}",
                ["kind", "load", "image-archive", str(archive), "--name", CLUSTER_NAME],
                f"load-{service}.log",
                300,
            )

    def stop(self) -> None:
        self.close()
        if self.keep:
            return
        with self.phases.timed("down"):
            if self._container is not None:
                self._container.stop()
            if self._cluster is not None:
                self._cluster.delete()

    # -- what the suite uses

    @property
    def inventory(self) -> Path:
        return INVENTORY

    @property
    def inventory_env(self) -> Mapping[str, str]:
        return {
            "SHOPSTACK_KIND_KUBECONFIG": str(self.logs / "kubeconfig"),
            "SHOPSTACK_KIND_AWS_ENDPOINT": self.emulator.runner_endpoint,
            "SHOPSTACK_KIND_CLUSTER_AWS_ENDPOINT": self.emulator.cluster_endpoint,
            "SHOPSTACK_KIND_IMAGE_STORE": str(self.logs / "image-store"),
            "AWS_ACCESS_KEY_ID": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        }

    def host_data(self) -> dict[str, Any]:
        data = kind_cluster({**os.environ, **self.inventory_env})
        assert data["account_id"] == LOCAL_ACCOUNT_ID
        return data

    @property
    def kubeconfig(self) -> Path:
        return self.logs / "kubeconfig"

    @property
    def shop_url(self) -> str:
        return self.forwards.url("frontend-proxy", 8080)

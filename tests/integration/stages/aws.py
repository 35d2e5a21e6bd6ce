"""The aws stage: a real AWS account. The images are built into `build/` and the deploy
(`pyinfra inventory/aws.py deploy.py`) pushes them to ECR and brings up everything else; the suite then
runs against the ALB the load balancer controller made for the Ingress. `--teardown` removes it all
afterwards (`pyinfra inventory/aws.py teardown.py`); without it the shop keeps running.

It refuses to start, with one line, without an explicit account id, a region and credentials
(`preflight`). The runner reaches in-cluster Services through `kubectl port-forward`; Kafka's listeners
are cluster-internal, so consumer lag is read from the consumers' metrics in Prometheus. Traces are read
from the deployed Jaeger's query API, logs from the collector's pod log, as at every stage.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import yaml
from lightkube.resources.networking_v1 import Ingress
from rich.console import Console

from infra.k8s.access import eks_token
from infra.stages import TargetError
from infra.stages.aws import aws_account
from tests.integration.stages.base import REPO, STAGE_LOGS, TEARDOWN, Phases, StageError
from tests.integration.stages.forwarding import ForwardedStage
from tests.support.waiting import eventually

INVENTORY = REPO / "inventory" / "aws.py"
LOGS = STAGE_LOGS / "aws"
#: how long a new ALB may take to be provisioned and its DNS name to answer
ALB_READY_SECONDS = 600


def preflight(env: Mapping[str, str] = os.environ) -> str | None:
    """Why the aws stage cannot start here (one line), or None when it can."""
    try:
        aws_account(env)
    except TargetError as err:
        return f"tox -e aws: {err}"
    return None


def kubeconfig_document(cluster: Mapping[str, Any], name: str, token: str) -> dict[str, Any]:
    """A kubeconfig for the EKS cluster `cluster` (describe_cluster's answer) with a bearer `token`."""
    ca = (cluster.get("certificateAuthority") or {}).get("data")
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": cluster["endpoint"], "certificate-authority-data": ca}}
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


class AwsStage(ForwardedStage):
    name = "aws"
    enforces_network_policies = False  # the VPC CNI enforces them only with its network policy agent on

    def __init__(self, console: Console, phases: Phases, keep: bool = True) -> None:
        super().__init__(console, phases, LOGS, keep)
        problem = preflight()
        if problem:
            raise StageError(problem)

    # -- lifecycle

    def start(self) -> None:
        with self.phases.timed("up"):
            self.cloud.verify_account()
            self.console.print(f"[green]✓[/green] AWS account {self.settings.account_id}")
        with self.phases.timed("build"):
            self.build()
        with self.phases.timed("deploy"):
            self.deploy()
        eventually(self._answering, timeout=ALB_READY_SECONDS, interval=5, what=f"the ALB at {self.shop_url}")

    def stop(self) -> None:
        self.close()
        if not self.keep:
            with self.phases.timed("down"):
                self.deploy(TEARDOWN)

    def _answering(self) -> bool:
        try:
            return httpx.get(f"{self.shop_url}/healthz", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False

    # -- what the suite uses

    @property
    def inventory(self) -> Path:
        return INVENTORY

    def host_data(self) -> dict[str, Any]:
        return aws_account(os.environ)

    @cached_property
    def shop_url(self) -> str:  # type: ignore[override]
        ingress = self.kube().get(Ingress, self.settings.project, namespace=self.namespace)
        balancers = (
            ingress.status.loadBalancer.ingress if ingress.status and ingress.status.loadBalancer else None
        ) or []
        if not balancers or not balancers[0].hostname:
            raise StageError(f"Ingress {self.settings.project} has no load balancer yet")
        return f"http://{balancers[0].hostname}"

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig with a fresh EKS token (tokens live 15 minutes): written anew on each use."""
        cluster = self.aws("eks").describe_cluster(name=self.settings.cluster_name)["cluster"]
        document = kubeconfig_document(
            cluster, self.settings.cluster_name, eks_token(self.cloud, self.settings.cluster_name)
        )
        path = self.logs / "kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document))
        path.chmod(0o600)
        return path

"""The AWS emulator as the deploy's target: the local cloud (`inventory/local.py`), or kind beside an
emulator container (`inventory/kind.py`). The one place the deploy touches the simulator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.stages import TargetError, settings_file
from sim.aws import CREDENTIALS
from sim.supervisor.cloud import CloudConfig
from sim.supervisor.state import read_state

LOCAL_ACCOUNT_ID = "123456789012"  # moto's account
LOCAL_CLOUD_TIMEOUT_SECONDS = 180
PROMETHEUS_MISSING = (
    "inventory/local.py: no `prometheus` binary here, so the shop is deployed without Prometheus "
    "(apt-get install prometheus to have it)"
)


def local_cloud(state_dir: Path, env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Host data for the local cloud in `state_dir`, started first when it is not running."""
    cloud = read_state(state_dir)
    if cloud is None or not cloud.running():
        up = subprocess.run(
            [sys.executable, "-m", "sim", "up", "--state-dir", str(state_dir)],
            stdin=subprocess.DEVNULL,
            timeout=LOCAL_CLOUD_TIMEOUT_SECONDS,
            check=False,
        )
        cloud = read_state(state_dir)
        if up.returncode != 0 or cloud is None:
            raise TargetError(f"the local cloud did not start (`python -m sim up --state-dir {state_dir}`)")
    aws = next((c for c in cloud.components if c.name == "aws" and c.state == "started"), None)
    if aws is None:
        raise TargetError(
            f"the local cloud in {state_dir} has no AWS emulator: `python -m sim down`, then retry"
        )
    return local_host_data(state_dir, aws.address, env)


def _emulator_data(stage: str) -> dict[str, Any]:
    """What every target on the AWS emulator shares: its account and fixed credentials, a state bucket
    reached over plain HTTP, images kept in an image store as well as the emulator's ECR, a kubeconfig."""
    return {
        "stage": stage,
        "account_id": LOCAL_ACCOUNT_ID,
        "static_credentials": [CREDENTIALS["AWS_ACCESS_KEY_ID"], CREDENTIALS["AWS_SECRET_ACCESS_KEY"]],
        "state_bucket_tls_only": False,
        "image_publisher": "local-store",
        "kube_access": "kubeconfig",
        # the same draining as in AWS, for a shorter time: requests on loopback finish in milliseconds,
        # and every release and every stopping frontend-proxy pod waits this long
        "deregistration_delay_seconds": 10,
        # the load generator idle until asked (`infra.ops.load users=N`): on a shared laptop or CI machine
        # its shoppers would take the CPU that the suite's own measured loads and the HPAs read
        "load_users": 0,
    }


def local_host_data(state_dir: Path, aws_endpoint: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The local inventory's host data for the cloud in `state_dir` whose AWS emulator is `aws_endpoint`.
    Prometheus is deployed only where its stand-in, the `prometheus` binary, is on `$PATH` (a settings
    file may say otherwise); without it the run says so in one line."""
    settings = settings_file(env)
    project = settings.get("project", "shopstack")
    prometheus = settings.get("prometheus", shutil.which("prometheus", path=env.get("PATH")) is not None)
    if not prometheus and "prometheus" not in settings:
        print(PROMETHEUS_MISSING, file=sys.stderr)
    return {
        **_emulator_data("local"),
        "aws_endpoint_url": aws_endpoint,
        "image_store": str(CloudConfig(state_dir).image_store.resolve()),
        "kubeconfig": str((state_dir / "eks" / "kubeconfig" / project).resolve()),
        **settings,
        "prometheus": prometheus,
    }


def kind_cluster(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Host data for a kind cluster beside an AWS emulator container (what `tox -e kind` starts):
    SHOPSTACK_KIND_KUBECONFIG is the cluster's kubeconfig, SHOPSTACK_KIND_AWS_ENDPOINT the emulator as
    the deploy reaches it, SHOPSTACK_KIND_CLUSTER_AWS_ENDPOINT as the pods reach it (on kind's network).
    The images are loaded into the nodes before the deploy, which records them in the emulator's ECR
    from SHOPSTACK_KIND_IMAGE_STORE (a scratch image store)."""
    names = {
        "kubeconfig": "SHOPSTACK_KIND_KUBECONFIG",
        "aws_endpoint_url": "SHOPSTACK_KIND_AWS_ENDPOINT",
        "cluster_aws_endpoint_url": "SHOPSTACK_KIND_CLUSTER_AWS_ENDPOINT",
        "image_store": "SHOPSTACK_KIND_IMAGE_STORE",
    }
    missing = [variable for variable in names.values() if not env.get(variable)]
    if missing:
        raise TargetError(f"set {', '.join(missing)} (`tox -e kind` does, for the cluster it starts)")
    return {
        **_emulator_data("kind"),
        **{key: env[variable] for key, variable in names.items()},
        **settings_file(env),
    }

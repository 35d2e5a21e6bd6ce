"""The aws inventory's plan against the AWS emulator (only its endpoint differs from real AWS) is the local
inventory's plan: the same operations, each with a change to make on a fresh account, so the code path
real AWS takes runs here."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.pyinfra_run import ACCOUNT_ID, REPO, emulator_data, run_pyinfra

DEPLOY = REPO / "deploy.py"


def test_the_aws_inventory_plans_what_the_local_inventory_plans(
    moto_endpoint: str, shop_images: Path, tmp_path: Path
) -> None:
    local = run_pyinfra(
        tmp_path,
        emulator_data(
            moto_endpoint,
            build_dir=str(shop_images),
            image_publisher="local-store",
            image_store=str(tmp_path / "images"),
            kube_access="kubeconfig",
            kubeconfig=str(tmp_path / "no-cluster-yet"),
        ),
        DEPLOY,
        "--dry",
        "--json",
    )
    settings = tmp_path / "settings.toml"
    settings.write_text(f'build_dir = "{shop_images}"\n')
    aws = run_pyinfra(
        tmp_path,
        REPO / "inventory" / "aws.py",
        DEPLOY,
        "--dry",
        "--json",
        env={
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "SHOPSTACK_AWS_ACCOUNT_ID": ACCOUNT_ID,
            "SHOPSTACK_SETTINGS": str(settings),
            "PYTHONPROFILEIMPORTTIME": "1",  # every module the run loads, on stderr
        },
    )
    assert local.returncode == 0, local.output[-4000:]
    assert aws.returncode == 0, aws.output[-4000:]
    local_plan = [op["name"] for op in local.results()["plan"]]
    assert [op["name"] for op in aws.results()["plan"]] == local_plan
    assert aws.planned_changes() == local.planned_changes()
    assert "EKS cluster 1.30" in local.planned_changes()
    assert "Kubernetes: apply" in local.planned_changes()
    loaded = re.findall(r"^import time:.*\|\s+([\w.]+)$", aws.stderr, re.MULTILINE)
    assert "infra.aws.eks" in loaded
    assert not [m for m in loaded if m.split(".")[0] in ("sim", "openfeature", "grpc")], (
        "the AWS path loads them"
    )


def test_the_aws_inventory_refuses_credentials_of_another_account(moto_endpoint: str, tmp_path: Path) -> None:
    run = run_pyinfra(
        tmp_path,
        REPO / "inventory" / "aws.py",
        DEPLOY,
        "--dry",
        env={
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "SHOPSTACK_AWS_ACCOUNT_ID": "999999999999",
        },
    )
    assert run.returncode != 0
    assert "the AWS credentials are for account 123456789012; the inventory says 999999999999" in run.output

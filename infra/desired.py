"""The desired state the deploy derives from its settings: the model's inputs, the services' table grants,
and the operators' overrides (flags and replica counts set by the ad-hoc operations, `infra.ops`) kept in
the state bucket so that the next deploy keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError
from pyinfra.api.host import Host

from infra.aws.ecr import built_images, image_reference
from infra.cloud import Cloud
from infra.fact import ApiFact
from infra.model import ModelConfig, render
from infra.model.common import Obj
from infra.settings import Settings

OVERRIDES_KEY = "overrides.json"

#: what services/cart/store.py and services/accounting/ledger.py call (DescribeTable: their readiness)
CART_ACTIONS = (
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
ACCOUNTING_ACTIONS = ("dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem")


def table_grants(settings: Settings) -> dict[str, tuple[str, list[str]]]:
    """Each service that keeps data: its own table and the actions it takes on it, and nothing else."""
    return {
        "cart": (settings.carts_table, list(CART_ACTIONS)),
        "accounting": (settings.orders_table, list(ACCOUNTING_ACTIONS)),
    }


class Overrides(ApiFact[dict[str, Any]]):
    """`{"flags": {...}, "replicas": {...}}` as the ad-hoc operations left them (empty before any)."""

    def command(self, bucket: str) -> str:
        return self.request(bucket=bucket)

    def read(self, cloud: Cloud, bucket: str) -> dict[str, Any]:  # type: ignore[override]
        try:
            body = cloud.client("s3").get_object(Bucket=bucket, Key=OVERRIDES_KEY)["Body"].read()
        except ClientError as err:
            if err.response["Error"]["Code"] in ("NoSuchKey", "NoSuchBucket", "404"):
                return {"flags": {}, "replicas": {}}
            raise
        return json.loads(body)  # type: ignore[no-any-return]


def write_overrides(cloud: Cloud, overrides: Mapping[str, Any]) -> None:
    cloud.client("s3").put_object(
        Bucket=cloud.settings.state_bucket,
        Key=OVERRIDES_KEY,
        Body=json.dumps(overrides, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
    )


def model_config(settings: Settings, overrides: Mapping[str, Any]) -> ModelConfig:
    images = {
        service: image_reference(settings, service, reference)
        for service, reference in built_images(settings).items()
    }
    return ModelConfig(
        images=images,
        stage="aws" if settings.stage == "aws" else "local",
        project=settings.project,
        namespace=settings.namespace,
        region=settings.region,
        cluster_name=settings.cluster_name,
        flags={**settings.flags, **overrides.get("flags", {})},
        replicas={**settings.replicas, **overrides.get("replicas", {})},
        carts_table=settings.carts_table,
        orders_table=settings.orders_table,
        role_arns={
            account: f"arn:aws:iam::{settings.account_id}:role/{settings.project}-{account}"
            for account in ("cart", "accounting", "aws-load-balancer-controller")
        },
        aws_endpoint_url=settings.cluster_aws_endpoint_url or settings.aws_endpoint_url,
        aws_credentials=settings.static_credentials,
        prometheus=settings.prometheus,
    )


def kubernetes_objects(host: Host, settings: Settings) -> list[Obj]:
    """Every Kubernetes object the deploy declares, with the operators' overrides applied."""
    overrides = host.get_fact(Overrides, bucket=settings.state_bucket)
    return render(model_config(settings, overrides))

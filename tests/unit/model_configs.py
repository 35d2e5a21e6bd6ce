"""The configurations the model tests render: one per stage, shaped as the inventories fill them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from infra.model import ModelConfig, render
from infra.model.render import IMAGE_NAMES

DIGEST = "sha256:" + "ab" * 32
ROLES = {
    "cart": "arn:aws:iam::123456789012:role/shopstack-cart",
    "accounting": "arn:aws:iam::123456789012:role/shopstack-accounting",
    "checkout": "arn:aws:iam::123456789012:role/shopstack-checkout",
    "aws-load-balancer-controller": "arn:aws:iam::123456789012:role/shopstack-lbc",
    "cluster-autoscaler": "arn:aws:iam::123456789012:role/shopstack-cluster-autoscaler",
}
LOCAL = ModelConfig(
    images={name: f"127.0.0.1:5000/shopstack/{name}@{DIGEST}" for name in IMAGE_NAMES},
    stage="local",
    aws_endpoint_url="http://127.0.0.1:4566",
    aws_credentials=("testing", "testing"),
)
AWS = ModelConfig(
    images={
        name: f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/shopstack/{name}@{DIGEST}"
        for name in IMAGE_NAMES
    },
    stage="aws",
    vpc_name="shopstack-vpc",
    role_arns=ROLES,
)
STAGES = {"local": LOCAL, "aws": AWS}


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} rendered"
    return matches[0]


def live_deployment(objects: list[dict[str, Any]], service: str) -> dict[str, Any]:
    """The Deployment of `service` that takes traffic: the blue colour, live before any release."""
    return find(objects, "Deployment", f"{service}-blue")


def render_with(config: ModelConfig, **changes: Any) -> list[dict[str, Any]]:
    return render(replace(config, **changes))

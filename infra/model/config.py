"""What the model is rendered from: one frozen `ModelConfig` that the deploy fills from the inventory.

Everything that differs between stages or runs is here (images, flags, replica overrides, table names,
IAM roles, the emulator's endpoint); everything else is fixed by the model. `ModelError` is the one error
bad input raises, with a message naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Stage = Literal["local", "aws"]


class ModelError(ValueError):
    """The configuration cannot be rendered; the message names the offending input."""


@dataclass(frozen=True)
class ModelConfig:
    """The inputs of `render`.

    `images` maps each of the nine services to its digest-pinned reference; `flags` maps flag names
    (`services.common.flags.Flag` values) to their values; `replicas` overrides the service table's
    defaults; `role_arns` maps a service account name (`cart`, `accounting`,
    `aws-load-balancer-controller`) to the IAM role it assumes (IRSA). `aws_endpoint_url` and
    `aws_credentials` (access key id, secret key) are the AWS emulator's, local stage only.
    """

    images: Mapping[str, str]
    stage: Stage = "local"
    project: str = "shopstack"
    namespace: str = "shopstack"
    region: str = "eu-west-1"
    cluster_name: str = "shopstack"
    flags: Mapping[str, bool | float] = field(default_factory=dict)
    replicas: Mapping[str, int] = field(default_factory=dict)
    carts_table: str = "shopstack-carts"
    orders_table: str = "shopstack-orders"
    role_arns: Mapping[str, str] = field(default_factory=dict)
    aws_endpoint_url: str | None = None
    aws_credentials: tuple[str, str] | None = None
    #: the Name tag of the cluster's VPC: the load balancer controller finds the VPC by it (an id is not
    #: known before the VPC exists, and the model is rendered when the deploy is planned)
    vpc_name: str = "shopstack-vpc"
    #: run Prometheus in the cluster (the local cloud can only where the `prometheus` binary is installed)
    prometheus: bool = True

    def __post_init__(self) -> None:
        if self.stage not in ("local", "aws"):
            raise ModelError(f"stage {self.stage!r} is neither 'local' nor 'aws'")
        if self.stage == "aws":
            for name in ("aws_endpoint_url", "aws_credentials"):
                if getattr(self, name) is not None:
                    raise ModelError(f"{name} is for the local stage only, not the aws stage")
            if not self.vpc_name:
                raise ModelError(
                    "the aws stage needs vpc_name (how the load balancer controller finds the VPC)"
                )
        if (self.aws_endpoint_url is None) != (self.aws_credentials is None):
            raise ModelError("aws_endpoint_url and aws_credentials go together (the emulator's)")

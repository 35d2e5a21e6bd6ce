"""What the model is rendered from: one frozen `ModelConfig` that the deploy fills from the inventory.

Everything that differs between stages or runs is here (images, flags, replica overrides, table names,
IAM roles, the emulator's endpoint); everything else is fixed by the model. `ModelError` is the one error
bad input raises, with a message naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from infra.model.release import Release, Strategy

Stage = Literal["local", "aws"]


class ModelError(ValueError):
    """The configuration cannot be rendered; the message names the offending input."""


@dataclass(frozen=True)
class Autoscaling:
    """How the shop scales: the cluster autoscaler's flags (`infra.model.cluster_autoscaler`; times in
    seconds, as they are to run) and the HPAs' CPU target and scale-down stabilization window."""

    cluster_autoscaler: bool = True
    scan_interval_seconds: float = 10
    scale_down_unneeded_seconds: float = 600
    scale_down_delay_after_add_seconds: float = 600
    scale_down_delay_after_failure_seconds: float = 180
    scale_down_utilization_threshold: float = 0.5
    expander: str = "random"
    balance_similar_node_groups: bool = False
    hpa_cpu_target_percent: int = 70
    hpa_scale_down_stabilization_seconds: int = 300


@dataclass(frozen=True)
class ModelConfig:
    """The inputs of `render`.

    `images` maps each of the nine services to its digest-pinned reference; `flags` maps flag names
    (`services.common.flags.Flag` values) to their values; `replicas` overrides the service table's
    defaults; `role_arns` maps a service account name (`cart`, `accounting`, `checkout`,
    `aws-load-balancer-controller`, `cluster-autoscaler`) to the IAM role it assumes (IRSA).
    `aws_endpoint_url` and `aws_credentials` (access key id, secret key) are the AWS emulator's, local
    stage only.
    `strategies` says how a service is released (`blue-green` unless it says `rolling`); `releases` says,
    for a blue-green service, which colour is live and what each colour runs (`infra.model.release`).
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
    checkouts_table: str = "shopstack-checkouts"
    role_arns: Mapping[str, str] = field(default_factory=dict)
    aws_endpoint_url: str | None = None
    aws_credentials: tuple[str, str] | None = None
    #: the Name tag of the cluster's VPC: the load balancer controller finds the VPC by it (an id is not
    #: known before the VPC exists, and the model is rendered when the deploy is planned)
    vpc_name: str = "shopstack-vpc"
    #: run Prometheus in the cluster (the local cloud can only where the `prometheus` binary is installed)
    prometheus: bool = True
    #: variables set on a service beyond the model's own (they win over them)
    env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    strategies: Mapping[str, Strategy] = field(default_factory=dict)
    releases: Mapping[str, Release] = field(default_factory=dict)
    #: how long the ALB's target groups keep a deregistered target draining, and so how long a pod that
    #: takes traffic keeps serving once it is told to stop
    deregistration_delay_seconds: int = 30
    #: the monitoring's clock as a fraction of AWS's (`infra.settings.Settings.alert_time_scale`): alert
    #: rules' `for:` and windows, Alertmanager's waits, scrape and probe intervals
    alert_time_scale: float = 1.0
    #: the cluster autoscaler and the HPAs' tuning (`infra.settings`: upstream's defaults)
    autoscaling: Autoscaling = field(default_factory=Autoscaling)

    def strategy(self, service: str) -> Strategy:
        return self.strategies.get(service, "blue-green")

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
        if not 0 < self.alert_time_scale <= 1:
            raise ModelError(f"alert_time_scale must be in (0, 1], not {self.alert_time_scale!r}")
        if (self.aws_endpoint_url is None) != (self.aws_credentials is None):
            raise ModelError("aws_endpoint_url and aws_credentials go together (the emulator's)")

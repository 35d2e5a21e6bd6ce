"""The deploy's settings: the inventory's host data, checked once.

An inventory (`inventory/local.py`, `inventory/aws.py`, `inventory/kind.py`) gives its host these keys
as pyinfra host data, from its stage and the settings file (`$SHOPSTACK_SETTINGS`); `--data key=value` on
the command line overrides any of them. Operations read these settings, never raw host data, so a
missing, misspelt or malformed key, or settings that contradict each other or what exists (a subnet
outside the VPC, a zone outside the region, a version EKS does not offer, a service or flag the shop does
not have), fail the whole run at its start, before any change, with one line naming the key:
`settings: unknown setting 'replcas' (did you mean 'replicas'?)`. The connector parses them when it
connects (`infra.cloud.Cloud.settings`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from ipaddress import IPv4Network
from itertools import combinations
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from infra.known import MOST_REPLICAS, check_names, flag_named, flag_setting, unknown
from infra.model.render import ENV_NAME, IMAGE_NAMES
from infra.model.services import SERVICE_NAMES

INSTANCE_TYPES = ("t3.medium", "t3.large")
#: the Kubernetes versions EKS offers a new cluster (standard and extended support, 2025):
#: `kubernetes_version` must be one of them
EKS_VERSIONS = ("1.28", "1.29", "1.30", "1.31", "1.32", "1.33")
#: the monitoring's clock on an emulator stage, as a fraction of AWS's (`Settings.alert_time_scale`)
EMULATOR_ALERT_TIME_SCALE = 0.1
#: the autoscaling's clock on an emulator stage, as a fraction of AWS's (`Settings.autoscaling_time_scale`)
EMULATOR_AUTOSCALING_TIME_SCALE = 0.1
#: the HPAs' CPU target in AWS and on an emulator stage (`Settings.hpa_cpu_target_percent`)
HPA_CPU_TARGET_PERCENT = 70
EMULATOR_HPA_CPU_TARGET_PERCENT = 30
#: EC2 on-demand prices, USD per instance-hour, Linux, us-east-1, as AWS's price list gives them on
#: INSTANCE_PRICES_DATE (unchanged since the T3 launch in 2018; these machines cannot reach AWS's price
#: list to check them again): what the autoscaling benchmark costs node-hours at
INSTANCE_PRICES_USD_PER_HOUR: dict[str, float] = {"t3.medium": 0.0416, "t3.large": 0.0832}
INSTANCE_PRICES_DATE = "2026-11-01"
INSTANCE_PRICES_REGION = "us-east-1"


class SettingsError(Exception):
    """The inventory's data is missing a key or holds a bad value."""


class NodeGroup(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    instance_type: Literal["t3.medium", "t3.large"] = "t3.medium"
    min_size: int = Field(default=1, ge=1)
    desired_size: int = Field(default=2, ge=1)
    max_size: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_size > self.desired_size:
            raise ValueError(f"min_size {self.min_size} is above desired_size {self.desired_size}")
        if self.desired_size > self.max_size:
            raise ValueError(f"desired_size {self.desired_size} is above max_size {self.max_size}")
        return self


class ClusterAutoscaler(BaseModel):
    """The cluster autoscaler's settings, rendered as its flags; upstream's defaults (cluster-autoscaler
    1.30's FAQ). Times are AWS's: a stage's `autoscaling_time_scale` shortens them on an emulator.

    `expander`: how a scale-up picks among node groups that would all fit the pending pods (upstream's
    `random`, `most-pods`, `least-waste`); with the deploy's one node group every expander picks it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: run it; None: where the cluster's nodes follow the EKS node group (aws and local, not kind)
    enabled: bool | None = None
    scan_interval_seconds: float = Field(default=10, gt=0)
    scale_down_unneeded_seconds: float = Field(default=600, ge=0)
    scale_down_delay_after_add_seconds: float = Field(default=600, ge=0)
    scale_down_delay_after_failure_seconds: float = Field(default=180, ge=0)
    #: a node whose pods request less than this share of its allocatable (cpu or memory) is unneeded
    scale_down_utilization_threshold: float = Field(default=0.5, gt=0, le=1)
    expander: Literal["random", "most-pods", "least-waste"] = "random"
    balance_similar_node_groups: bool = False


class Settings(BaseModel):
    """Everything the deploy needs to know about its target; the stages differ only in these values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Literal["local", "aws", "kind"]
    project: str = Field(default="shopstack", pattern=r"^[a-z][a-z0-9-]{1,30}$")
    account_id: str = Field(pattern=r"^\d{12}$")
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    #: the AWS emulator's endpoint (local and kind stages); None for real AWS
    aws_endpoint_url: str | None = None
    #: the emulator's endpoint as the pods reach it, where that differs from the deploy's (kind: the
    #: emulator container's name on kind's network); None: `aws_endpoint_url`
    cluster_aws_endpoint_url: str | None = None
    #: the emulator's fixed access key and secret; None for the standard AWS credential chain
    static_credentials: tuple[str, str] | None = None
    #: three zones of `region` (`us-east-1a`...); None: the region's a, b and c
    availability_zones: tuple[str, str, str] | None = None
    vpc_cidr: IPv4Network = IPv4Network("10.0.0.0/16")
    private_subnets: tuple[IPv4Network, IPv4Network, IPv4Network] = (
        IPv4Network("10.0.1.0/24"),
        IPv4Network("10.0.2.0/24"),
        IPv4Network("10.0.3.0/24"),
    )
    public_subnets: tuple[IPv4Network, IPv4Network, IPv4Network] = (
        IPv4Network("10.0.4.0/24"),
        IPv4Network("10.0.5.0/24"),
        IPv4Network("10.0.6.0/24"),
    )
    #: deny plain-HTTP access to the state bucket; the local inventory turns it off because the emulator
    #: speaks plain HTTP only and a TLS-only policy would lock the deploy out of its own state
    state_bucket_tls_only: bool = True
    #: one of EKS_VERSIONS
    kubernetes_version: str = "1.30"
    node_group: NodeGroup = NodeGroup()
    namespace: str = Field(default="shopstack", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    #: build/images.json (service -> name@sha256:digest) and the OCI layouts beside it
    build_dir: Path = Path("build")
    #: where images go: ECR (pushed over the registry API), or ECR plus the local cloud's image store
    image_publisher: Literal["ecr", "local-store"] = "ecr"
    image_store: Path | None = None
    #: how the deploy reaches Kubernetes: a kubeconfig file (local cloud, kind) or an EKS token (AWS)
    kube_access: Literal["kubeconfig", "eks-token"] = "eks-token"
    kubeconfig: Path | None = None
    lock_ttl_seconds: int = Field(default=3600, ge=60)
    #: break a lock another deploy holds (`--data break_lock=true`): only when that deploy is known dead
    break_lock: bool = False
    #: the GitHub repository ("owner/name") whose Actions deliver this target; with it the deploy makes
    #: GitHub's OIDC provider and the pipeline's roles (`infra.aws.iam.delivery_roles`); None: neither
    github_repository: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$")
    #: the GitHub environment whose jobs, and only they, may deploy this target (`<project>-deliver`)
    github_environment: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")
    #: the branch whose environment-less jobs (the scheduled drift check) may read it (`<project>-drift`)
    github_branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]+$")
    rollout_timeout_seconds: float = Field(default=300, gt=0)
    #: flags of the flags' contract (`services.common.flag_contract`): true or false, or a number >= 0
    flags: dict[str, bool | float] = Field(default_factory=dict)
    #: run Prometheus in the cluster; the local inventory turns it off where its stand-in, the
    #: `prometheus` binary, is not installed
    prometheus: bool = True
    #: a service's replica count, instead of the model's (`infra.model.services`)
    replicas: dict[str, Annotated[int, Field(strict=True, ge=1, le=MOST_REPLICAS)]] = Field(
        default_factory=dict
    )
    #: environment variables set on a service beyond the model's (its ConfigMap): a change is released
    service_env: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: how each service is released: `blue-green` (every service, unless named here) or `rolling`
    release_strategies: dict[str, Literal["blue-green", "rolling"]] = Field(default_factory=dict)
    #: how many services a deploy releases at once: each wave needs room for a second colour of each
    release_wave_size: int = Field(default=3, ge=1, le=20)
    #: how long the ALB keeps a deregistered target draining, and the old colour of a release up after
    #: the switch (AWS's default is 300 s; the deploy sets it on every target group)
    deregistration_delay_seconds: int = Field(default=30, ge=0, le=3600)
    #: the load generator's shoppers (Locust users; `infra.ops.load` changes it on a running shop); 0: none
    load_users: int = Field(default=5, ge=0, le=500)
    #: the monitoring's clock, as a fraction of AWS's: the alert rules' `for:` and range windows,
    #: Alertmanager's grouping waits, the scrape and probe intervals are AWS's times this (floored where a
    #: window needs scrapes in it). None: the stage's own, 1 in AWS, a tenth on an emulator (the local
    #: cloud, kind), so that an alert the suite provokes fires in seconds there and in minutes in AWS
    alert_time_scale: float | None = Field(default=None, gt=0, le=1)
    #: the cluster autoscaler (its flags; upstream's defaults)
    cluster_autoscaler: ClusterAutoscaler = ClusterAutoscaler()
    #: the HPAs' CPU target, percent of the pods' CPU requests (what the HPA controller scales out past).
    #: None: the stage's own, 70 in AWS, EMULATOR_HPA_CPU_TARGET_PERCENT on an emulator, whose pods all
    #: share this machine's two cores: a load it can make measures as a fraction of what a node gives
    hpa_cpu_target_percent: int | None = Field(default=None, ge=1, le=1000)
    #: how long an HPA keeps its highest recent recommendation before it scales in (Kubernetes' default
    #: `behavior.scaleDown.stabilizationWindowSeconds`), in AWS's clock like the autoscaler's times
    hpa_scale_down_stabilization_seconds: int = Field(default=300, ge=0, le=3600)
    #: the autoscaling's clock as a fraction of AWS's: the cluster autoscaler's times and the HPAs'
    #: stabilization window are the settings' times this. None: the stage's own, 1 in AWS, a tenth on an
    #: emulator (the local cloud, kind), so that the suite sees nodes come and go in minutes there
    autoscaling_time_scale: float | None = Field(default=None, gt=0, le=1)

    @field_validator("kubernetes_version", mode="before")
    @classmethod
    def _offered_by_eks(cls, version: object) -> object:
        if isinstance(version, int | float):  # `--data kubernetes_version=1.30` arrives as the number 1.3
            quoted = f'"{EKS_VERSIONS[-1]}"'
            raise ValueError(
                f"a version is a string, not the number {version!r}: quote it, e.g. {quoted} "
                f"(--data 'kubernetes_version={quoted}')"
            )
        if version not in EKS_VERSIONS:
            raise ValueError(f"EKS offers {', '.join(EKS_VERSIONS)}, not {version!r}")
        return version

    @field_validator("replicas", "release_strategies", mode="before")
    @classmethod
    def _of_services(cls, given: object) -> object:
        if isinstance(given, Mapping):
            check_names("service", given, SERVICE_NAMES)
        return given

    @field_validator("service_env", mode="before")
    @classmethod
    def _of_images(cls, given: object) -> object:
        if isinstance(given, Mapping):
            check_names("service", given, IMAGE_NAMES)
            for service, variables in given.items():
                for variable in variables if isinstance(variables, Mapping) else ():
                    if not ENV_NAME.fullmatch(variable):
                        raise ValueError(f"{variable!r} of {service!r} is not an environment variable name")
        return given

    @field_validator("flags", mode="before")
    @classmethod
    def _in_the_flags_contract(cls, given: object) -> object:
        if isinstance(given, Mapping):
            for name, value in given.items():
                flag_setting(flag_named(name), value)
        return given

    @model_validator(mode="after")
    def _network(self) -> Self:
        subnets = {
            f"{kind}.{index}": subnet
            for kind, group in (
                ("private_subnets", self.private_subnets),
                ("public_subnets", self.public_subnets),
            )
            for index, subnet in enumerate(group)
        }
        for name, subnet in subnets.items():
            if not subnet.subnet_of(self.vpc_cidr):
                raise ValueError(f"{name}: {subnet} is not inside vpc_cidr {self.vpc_cidr}")
        for (name, subnet), (other, overlapping) in combinations(subnets.items(), 2):
            if subnet.overlaps(overlapping):
                raise ValueError(f"{name}: {subnet} overlaps {other} {overlapping}")
        zone_of_region = re.compile(rf"{re.escape(self.region)}(-[a-z]+-\d+)?[a-z]")
        zones = self.availability_zones or ()
        for zone in zones:
            if not zone_of_region.fullmatch(zone):
                raise ValueError(f"availability_zones: {zone!r} is not a zone of region {self.region}")
            if zones.count(zone) > 1:
                raise ValueError(f"availability_zones: {zone!r} is given twice")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.image_publisher == "local-store" and self.image_store is None:
            raise ValueError("image_publisher local-store needs image_store (the local cloud's image store)")
        if self.kube_access == "kubeconfig" and self.kubeconfig is None:
            raise ValueError("kube_access kubeconfig needs kubeconfig (the file's path)")
        return self

    @model_validator(mode="after")
    def _delivered_from_github(self) -> Self:
        if self.github_repository is not None and self.github_environment is None:
            raise ValueError(
                "github_repository needs github_environment (the GitHub environment that deploys)"
            )
        return self

    @property
    def alert_scale(self) -> float:
        """`alert_time_scale`, or the stage's own when it is not set."""
        if self.alert_time_scale is not None:
            return self.alert_time_scale
        return 1.0 if self.stage == "aws" else EMULATOR_ALERT_TIME_SCALE

    @property
    def autoscaling_scale(self) -> float:
        """`autoscaling_time_scale`, or the stage's own when it is not set."""
        if self.autoscaling_time_scale is not None:
            return self.autoscaling_time_scale
        return 1.0 if self.stage == "aws" else EMULATOR_AUTOSCALING_TIME_SCALE

    @property
    def hpa_cpu_target(self) -> int:
        """`hpa_cpu_target_percent`, or the stage's own when it is not set."""
        if self.hpa_cpu_target_percent is not None:
            return self.hpa_cpu_target_percent
        return HPA_CPU_TARGET_PERCENT if self.stage == "aws" else EMULATOR_HPA_CPU_TARGET_PERCENT

    @property
    def cluster_autoscaler_enabled(self) -> bool:
        """Whether the deploy runs the cluster autoscaler: the setting, else where nodes follow the node
        group (not on kind, whose nodes are its own)."""
        enabled = self.cluster_autoscaler.enabled
        return self.stage != "kind" if enabled is None else enabled

    @property
    def zones(self) -> tuple[str, str, str]:
        return self.availability_zones or (f"{self.region}a", f"{self.region}b", f"{self.region}c")

    @property
    def cluster_name(self) -> str:
        return self.project

    @property
    def state_bucket(self) -> str:
        return f"{self.project}-state-{self.account_id}-{self.region}"

    @property
    def lock_table(self) -> str:
        return f"{self.project}-deploy-lock"

    @property
    def carts_table(self) -> str:
        return f"{self.project}-carts"

    @property
    def orders_table(self) -> str:
        return f"{self.project}-orders"

    @property
    def checkouts_table(self) -> str:
        return f"{self.project}-checkouts"

    @property
    def images_file(self) -> Path:
        return self.build_dir / "images.json"

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Settings:
        """The settings in a host's `data`, where every key is a setting but pyinfra's own (those starting
        with `_`: its operations' global arguments, such as `_sudo`). SettingsError, one line naming each
        bad key, when they are not."""
        try:
            return cls.model_validate({key: value for key, value in data.items() if not key.startswith("_")})
        except ValidationError as err:
            raise SettingsError(f"settings: {'; '.join(_problem(e) for e in err.errors())}") from None


def _problem(error: ErrorDetails) -> str:
    """One validation error as `key: what is wrong (got value)`; an unknown key with the nearest known."""
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return unknown("setting", key, _known_keys(error["loc"][:-1]))
    if error["type"] == "value_error":
        message = str(error["ctx"]["error"])
    elif error["type"] == "missing" or isinstance(error["input"], Mapping | list | tuple):
        message = error["msg"]
    else:
        message = f"{error['msg']} (got {error['input']!r})"
    return f"{key}: {message}" if key else message


def _known_keys(path: tuple[int | str, ...]) -> list[str]:
    """The settings' keys at `path` (`()`: the top level, `("node_group",)`: the node group's), spelt in
    full."""
    model: type[BaseModel] = Settings
    for part in path:
        field = model.model_fields.get(str(part))
        nested = field.annotation if field else None
        if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
            return []
        model = nested
    return [".".join((*map(str, path), name)) for name in model.model_fields]

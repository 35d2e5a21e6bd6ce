"""The deploy's settings: the inventory's host data, checked once.

An inventory (`inventory/local.py`, `inventory/aws.py`) gives its host these keys as pyinfra host data;
`--data key=value` on the command line overrides any of them. Operations read these settings,
never raw host data, so a missing or malformed key fails the whole run at its start with one line
naming the key. The connector parses them when it connects (`infra.cloud.Cloud.settings`).
"""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

INSTANCE_TYPES = ("t3.medium", "t3.large")


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
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"needs min_size <= desired_size <= max_size, got "
                f"{self.min_size} <= {self.desired_size} <= {self.max_size}"
            )
        return self


class Settings(BaseModel):
    """Everything the deploy needs to know about its target; the stages differ only in these values."""

    model_config = ConfigDict(frozen=True, extra="ignore")

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
    rollout_timeout_seconds: float = Field(default=300, gt=0)
    flags: dict[str, bool | float] = Field(default_factory=dict)
    #: run Prometheus in the cluster; the local inventory turns it off where its stand-in, the
    #: `prometheus` binary, is not installed
    prometheus: bool = True
    replicas: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for subnet in (*self.private_subnets, *self.public_subnets):
            if not subnet.subnet_of(self.vpc_cidr):
                raise ValueError(f"subnet {subnet} is not inside vpc_cidr {self.vpc_cidr}")
        if self.image_publisher == "local-store" and self.image_store is None:
            raise ValueError("image_publisher local-store needs image_store (the local cloud's image store)")
        if self.kube_access == "kubeconfig" and self.kubeconfig is None:
            raise ValueError("kube_access kubeconfig needs kubeconfig (the file's path)")
        return self

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
    def images_file(self) -> Path:
        return self.build_dir / "images.json"

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Settings:
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}" for e in err.errors()
            )
            raise SettingsError(f"inventory data: {problems}") from None

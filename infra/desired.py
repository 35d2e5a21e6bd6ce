"""The desired state the deploy derives from its settings: the model's inputs, the services' table grants,
and the operators' overrides (flags and replica counts set by the ad-hoc operations, `infra.ops`) kept in
the state bucket so that the next deploy keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError
from pyinfra.api.host import Host

from infra.aws.ecr import built_images, image_reference
from infra.cloud import Cloud
from infra.fact import ApiFact
from infra.k8s.facts import LiveObjects
from infra.k8s.release import Move, ReleasePlan, plan_releases, release_kinds
from infra.model import ModelConfig, render
from infra.model.common import Obj
from infra.model.config import Autoscaling
from infra.model.load_generator import USERS_VARIABLE
from infra.model.services import LOAD_GENERATOR
from infra.settings import Settings

OVERRIDES_KEY = "overrides.json"

#: what services/cart/store.py, services/accounting/ledger.py and services/checkout/idempotency.py call
#: (DescribeTable: their readiness)
CART_ACTIONS = (
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
ACCOUNTING_ACTIONS = ("dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem")
CHECKOUT_ACTIONS = (
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)


def table_grants(settings: Settings) -> dict[str, tuple[str, list[str]]]:
    """Each service that keeps data: its own table and the actions it takes on it, and nothing else."""
    return {
        "cart": (settings.carts_table, list(CART_ACTIONS)),
        "accounting": (settings.orders_table, list(ACCOUNTING_ACTIONS)),
        "checkout": (settings.checkouts_table, list(CHECKOUT_ACTIONS)),
    }


class Overrides(ApiFact[dict[str, Any]]):
    """`{"flags": {...}, "replicas": {...}, "rolled_back": {service: image}, "load": {"users": N}}` as the
    ad-hoc operations left them (empty before any)."""

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
        checkouts_table=settings.checkouts_table,
        role_arns={
            account: f"arn:aws:iam::{settings.account_id}:role/{settings.project}-{account}"
            for account in (
                "cart",
                "accounting",
                "checkout",
                "aws-load-balancer-controller",
                "cluster-autoscaler",
            )
        },
        aws_endpoint_url=settings.cluster_aws_endpoint_url or settings.aws_endpoint_url,
        aws_credentials=settings.static_credentials,
        prometheus=settings.prometheus,
        strategies=settings.release_strategies,
        env=service_env(settings, overrides),
        deregistration_delay_seconds=settings.deregistration_delay_seconds,
        alert_time_scale=settings.alert_scale,
        autoscaling=autoscaling(settings),
    )


def autoscaling(settings: Settings) -> Autoscaling:
    """The cluster autoscaler's flags and the HPAs' tuning, their times on the stage's clock (the
    autoscaler's scan at least a second)."""
    scaler, scale = settings.cluster_autoscaler, settings.autoscaling_scale
    return Autoscaling(
        cluster_autoscaler=settings.cluster_autoscaler_enabled,
        scan_interval_seconds=max(1.0, round(scaler.scan_interval_seconds * scale, 1)),
        scale_down_unneeded_seconds=round(scaler.scale_down_unneeded_seconds * scale, 1),
        scale_down_delay_after_add_seconds=round(scaler.scale_down_delay_after_add_seconds * scale, 1),
        scale_down_delay_after_failure_seconds=round(
            scaler.scale_down_delay_after_failure_seconds * scale, 1
        ),
        scale_down_utilization_threshold=scaler.scale_down_utilization_threshold,
        expander=scaler.expander,
        balance_similar_node_groups=scaler.balance_similar_node_groups,
        hpa_cpu_target_percent=settings.hpa_cpu_target,
        hpa_scale_down_stabilization_seconds=round(settings.hpa_scale_down_stabilization_seconds * scale),
    )


def load_users(settings: Settings, overrides: Mapping[str, Any]) -> int:
    """The load generator's shoppers: what `infra.ops.load` set, else the `load_users` setting."""
    return int(overrides.get("load", {}).get("users", settings.load_users))


def service_env(settings: Settings, overrides: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The `service_env` setting, with the load generator's users (`LOCUST_USERS`) as they are to be."""
    users = {USERS_VARIABLE: str(load_users(settings, overrides))}
    return {**settings.service_env, LOAD_GENERATOR: {**settings.service_env.get(LOAD_GENERATOR, {}), **users}}


@dataclass(frozen=True)
class Wave:
    """The three applies that release some services at once (`infra.k8s.release`), and those moves."""

    moves: tuple[Move, ...]
    staged: list[Obj]
    switched: list[Obj]
    final: list[Obj]


@dataclass(frozen=True)
class Declared:
    """What the deploy declares in Kubernetes: `current`, everything as it should be with every service
    still on the colour it runs (new configuration applied, nothing released yet); then the waves of
    releases, each starting from where the one before left; `final`, the declaration once all are done."""

    plan: ReleasePlan
    current: list[Obj]
    waves: tuple[Wave, ...]
    final: list[Obj]


def live_workloads(host: Host) -> dict[str, Obj]:
    """The deploy's live Deployments and Services: what the releases are planned from."""
    live: dict[str, Obj] = host.get_fact(LiveObjects, kinds=release_kinds())
    return live


def kubernetes_objects(host: Host, settings: Settings) -> Declared:
    """Every Kubernetes object the deploy declares, with the operators' overrides applied, for each phase
    of the releases it makes."""
    overrides = host.get_fact(Overrides, bucket=settings.state_bucket)
    config = model_config(settings, overrides)
    plan = plan_releases(config, live_workloads(host), overrides.get("rolled_back", {}))
    waves = []
    before = dict(plan.current)  # each wave starts where the one before left the cluster
    for start in range(0, len(plan.moves), settings.release_wave_size):
        moves = plan.moves[start : start + settings.release_wave_size]
        staged, switched, final = (
            render(replace(config, releases={**before, **{m.service: phase[m.service] for m in moves}}))
            for phase in (plan.staged, plan.switched, plan.final)
        )
        waves.append(Wave(moves, staged, switched, final))
        before |= {move.service: plan.final[move.service] for move in moves}
    current = render(replace(config, releases=plan.current))
    return Declared(plan, current, tuple(waves), waves[-1].final if waves else current)


def current_objects(
    host: Host, settings: Settings, overrides: Mapping[str, Any]
) -> tuple[list[Obj], ReleasePlan]:
    """The objects as they should be with no release under way (each blue-green service's live colour
    running what it runs): what the ad-hoc operations apply a change to."""
    config = model_config(settings, overrides)
    plan = plan_releases(config, live_workloads(host), overrides.get("rolled_back", {}))
    return render(replace(config, releases=plan.current)), plan

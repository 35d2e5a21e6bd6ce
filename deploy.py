"""The whole Shopstack system, AWS and Kubernetes, as one declarative pyinfra deploy.

    pyinfra inventory/local.py deploy.py        # the offline local cloud (started if it is not running)
    pyinfra inventory/aws.py deploy.py          # a real AWS account
    pyinfra inventory/local.py deploy.py --dry  # the plan only: what would change
    ... --data break_lock=true                  # break a lock a dead deploy left

In dependency order (ARCHITECTURE.md, "The deploy"): state backend, lock, network, IAM, EKS, ECR and
images, data tables, then the Kubernetes objects the model renders (applied server-side, every rollout
awaited; a changed service released blue-green: its new colour staged and smoke-checked, traffic switched,
the old colour drained and scaled to zero, see `infra/k8s/release.py`; the undeclared pruned), the deploy
record, and the lock released. Every operation reads the current state and changes only what differs, so
a second run changes nothing. The inventory's data is the only difference between stages.
"""

import shlex
import sys

from pyinfra import host

from infra import desired
from infra.aws import ecr, eks, iam, lock, network, record, state, tables
from infra.cloud import cloud_of
from infra.k8s import apply, release, rollout

settings = cloud_of(host).settings
command_line = shlex.join(["pyinfra", *sys.argv[1:]])

state.state_bucket(name="State bucket: versioned, encrypted, private")
state.lock_table(name="Lock table")
lock.acquire_lock(command=command_line, name="Take the deploy lock")

network.vpc(name="VPC")
network.subnets(name="Subnets: public and private in each zone")
network.internet_gateway(name="Internet gateway")
network.nat_gateways(name="NAT gateway per zone")
network.route_tables(name="Route tables")
network.security_groups(name="Security groups: cluster, nodes, ALB")

iam.cluster_role(name="IAM: cluster role")
iam.node_role(name="IAM: node role")
eks.cluster(name=f"EKS cluster {settings.kubernetes_version}")
eks.node_group(name="EKS node group")
iam.oidc_provider(name="IAM: OIDC provider of the cluster")
iam.service_roles(grants=desired.table_grants(settings), name="IAM: service roles (IRSA)")
iam.load_balancer_controller_role(name="IAM: load balancer controller role")
iam.cluster_autoscaler_role(name="IAM: cluster autoscaler role")
iam.github_oidc_provider(name="IAM: GitHub Actions OIDC provider (when a repository delivers)")
iam.delivery_roles(name="IAM: the pipeline's roles, deliver and drift (when a repository delivers)")

ecr.repositories(name="ECR repositories")
ecr.publish_images(name="Images")
tables.data_tables(name="DynamoDB tables: carts, orders, checkouts")

declared = desired.kubernetes_objects(host, settings)
apply.apply(objects=declared.current, name="Kubernetes: apply")
rollout.wait_for_rollouts(
    objects=declared.current,
    timeout=settings.rollout_timeout_seconds,
    _if=rollout.always,
    name="Kubernetes: rollouts",
)
applied = declared.current
for number, wave in enumerate(declared.waves, 1):
    releasing = ", ".join(move.service for move in wave.moves)
    step = f"Releases {number}/{len(declared.waves)} ({releasing})"
    apply.apply(objects=wave.staged, after=applied, name=f"{step}: new colours staged")
    rollout.wait_for_rollouts(
        objects=wave.staged, timeout=settings.rollout_timeout_seconds, name=f"{step}: new colours ready"
    )
    release.smoke_checks(moves=wave.moves, name=f"{step}: smoke-check the new colours")
    apply.apply(objects=wave.switched, after=wave.staged, name=f"{step}: switch traffic")
    release.drain(
        moves=wave.moves, seconds=settings.deregistration_delay_seconds, name=f"{step}: old colours drain"
    )
    apply.apply(objects=wave.final, after=wave.switched, name=f"{step}: old colours to zero")
    applied = wave.final
apply.prune(
    objects=declared.final, kinds=apply.kinds_of(declared.final), name="Kubernetes: prune the undeclared"
)

record.deploy_record(
    command_line=command_line,
    live={service: r.live for service, r in declared.plan.final.items()},
    name="Deploy record",
)
lock.release_lock(name="Release the deploy lock")

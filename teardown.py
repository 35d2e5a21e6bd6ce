"""Everything `deploy.py` made, removed in the reverse order, under the deploy lock.

    pyinfra inventory/local.py teardown.py
    pyinfra inventory/aws.py teardown.py --dry      # what would be removed

Kubernetes objects first (the Ingress's load balancer goes with it, and is awaited before the network
it stands in), then the node group and cluster, IAM, repositories, tables and the network. The state
bucket and the lock table stay: they hold the deploy records and guard the next deploy.
"""

import shlex
import sys

from pyinfra import host

from infra import desired
from infra.aws import ecr, eks, iam, loadbalancers, lock, network, record, tables
from infra.cloud import cloud_of
from infra.k8s import apply

settings = cloud_of(host).settings
command_line = shlex.join(["pyinfra", *sys.argv[1:]])

lock.acquire_lock(command=command_line, name="Take the deploy lock")

declared = desired.kubernetes_objects(host, settings)
apply.prune(objects=[], kinds=apply.kinds_of(declared.final), name="Kubernetes: delete every object")
loadbalancers.load_balancers_gone(name="Load balancers of the Ingress: gone")

eks.node_group(present=False, name="EKS node group")
eks.cluster(present=False, name="EKS cluster")
iam.delivery_roles(present=False, name="IAM: the pipeline's roles")
iam.github_oidc_provider(present=False, name="IAM: GitHub OIDC provider, unless a role trusts it")
iam.cluster_autoscaler_role(present=False, name="IAM: cluster autoscaler role")
iam.load_balancer_controller_role(present=False, name="IAM: load balancer controller role")
iam.service_roles(grants=desired.table_grants(settings), present=False, name="IAM: service roles")
iam.oidc_provider(present=False, name="IAM: OIDC provider")
iam.node_role(present=False, name="IAM: node role")
iam.cluster_role(present=False, name="IAM: cluster role")

ecr.repositories(present=False, name="ECR repositories")
tables.data_tables(present=False, name="DynamoDB tables")

network.security_groups(present=False, name="Security groups")
network.route_tables(present=False, name="Route tables")
network.nat_gateways(present=False, name="NAT gateways")
network.internet_gateway(present=False, name="Internet gateway")
network.subnets(present=False, name="Subnets")
network.vpc(present=False, name="VPC")

record.deploy_record(command_line=command_line, name="Deploy record")
lock.release_lock(name="Release the deploy lock")

"""What a deploy talks to: one AWS account (a boto3 session, at the emulator's endpoint in the local
cloud) and the Kubernetes API of its EKS cluster.

One `Cloud` per pyinfra host, made by the host's connector (`infra.connector`) when pyinfra connects.
Facts read through it; operations' `FunctionCommand`s act through it (`cloud_of(host)`). It counts every
AWS and Kubernetes call it makes, by service and verb, for the run's summary and the benchmark.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from infra.settings import Settings

if TYPE_CHECKING:
    from lightkube import Client
    from pyinfra.api.host import Host

#: the verbs of Kubernetes requests that change something (as `infra.k8s.access.verb_of` names them)
KUBE_WRITES = frozenset({"apply", "patch", "create", "update", "delete"})
AWS_RETRIES = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=10, read_timeout=60)


class Cloud:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.calls: Counter[str] = Counter()
        key, secret = settings.static_credentials or (None, None)
        self.session = boto3.Session(
            region_name=settings.region, aws_access_key_id=key, aws_secret_access_key=secret
        )
        self.session.events.register("before-call", self._count_aws_call)
        self._clients: dict[str, Any] = {}
        self._kube: Client | None = None

    def client(self, service: str) -> Any:
        """A boto3 client of `service`, one per service for the run."""
        if service not in self._clients:
            self._clients[service] = self.session.client(  # type: ignore[call-overload]
                service, endpoint_url=self.settings.aws_endpoint_url, config=AWS_RETRIES
            )
        return self._clients[service]

    def kube(self) -> Client | None:
        """The cluster's Kubernetes client, or None while the EKS cluster does not exist (yet)."""
        if self._kube is None:
            from infra.k8s.access import connect

            self._kube = connect(self)
        return self._kube

    def verify_account(self) -> None:
        """Refuse credentials of an account other than the one the inventory names."""
        account = self.client("sts").get_caller_identity()["Account"]
        if account != self.settings.account_id:
            raise PermissionError(
                f"the AWS credentials are for account {account}; the inventory says "
                f"{self.settings.account_id}"
            )

    def count_kube_call(self, verb: str) -> None:
        self.calls[f"kubernetes {verb}"] += 1

    def _count_aws_call(self, model: Any, **_: Any) -> None:
        self.calls[f"aws {model.service_model.endpoint_prefix}"] += 1

    @property
    def aws_calls(self) -> int:
        return sum(n for key, n in self.calls.items() if key.startswith("aws "))

    @property
    def kube_calls(self) -> int:
        return sum(n for key, n in self.calls.items() if key.startswith("kubernetes "))

    @property
    def kube_writes(self) -> int:
        return sum(self.calls[f"kubernetes {verb}"] for verb in KUBE_WRITES)

    def summary(self) -> str:
        """One line: how many calls of each kind this run made."""
        return f"{self.aws_calls} AWS calls, {self.kube_calls} Kubernetes calls ({self.kube_writes} writes)"


def cloud_of(host: Host) -> Cloud:
    """The cloud of a host whose connector is `@shopstack` (see `infra.connector`)."""
    cloud = getattr(host.connector, "cloud", None)
    if not isinstance(cloud, Cloud):
        raise TypeError(
            f"host {host.name} is not a @shopstack host: use inventory/local.py or inventory/aws.py"
        )
    return cloud

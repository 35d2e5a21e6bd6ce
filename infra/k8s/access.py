"""How the deploy reaches its cluster's Kubernetes API: one lightkube `Client`, whichever the access.

Two accesses, chosen by the inventory's `kube_access`; nothing else in the deploy knows which is used:

- `kubeconfig`: the file at `settings.kubeconfig` (the local cloud's EKS binding writes it a moment after
  the emulated EKS cluster turns ACTIVE, so a deploy that has just created the cluster waits for it);
- `eks-token`: the EKS cluster's endpoint and CA from `describe_cluster`, and a bearer token made as
  `aws eks get-token` makes it: a presigned STS GetCallerIdentity URL bound to the cluster's name by the
  signed header `x-k8s-aws-id`, base64url-encoded behind `k8s-aws-v1.`. Tokens live 15 minutes on the
  server's side; a fresh one is made every few minutes so that long rollout waits keep working.

Every request goes through a counting transport, so the run's summary and the benchmark see each
Kubernetes call by verb (`Cloud.count_kube_call`).
"""

from __future__ import annotations

import base64
import binascii
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import boto3
import httpx2
from botocore.signers import RequestSigner
from lightkube import Client
from lightkube.config.client_adapter import verify_cluster
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.config.models import Cluster, User

from infra.settings import Settings

FIELD_MANAGER = "shopstack-deploy"
KUBECONFIG_WAIT_SECONDS = 60.0
TOKEN_PREFIX = "k8s-aws-v1."
#: how long a presigned URL is valid for (what `aws eks get-token` asks for)
TOKEN_URL_EXPIRY_SECONDS = 60
#: make a new token after this long (EKS accepts one for 15 minutes after it was signed)
TOKEN_REFRESH_SECONDS = 600.0
REQUEST_TIMEOUT = httpx2.Timeout(30.0)
APPLY_PATCH = "application/apply-patch+yaml"


class Cloud(Protocol):
    """What access needs of `infra.cloud.Cloud`: the settings, AWS clients, and a counter of calls (a
    protocol, so that the cloud can make its client here without the two importing each other)."""

    settings: Settings
    session: boto3.Session

    def client(self, service: str) -> Any: ...

    def count_kube_call(self, verb: str) -> None: ...


class KubeAccessError(Exception):
    """The cluster exists but cannot be reached as the inventory says."""


def connect(cloud: Cloud) -> Client | None:
    """The cluster's client, or None while the EKS cluster does not exist."""
    access = _access(cloud)
    if access is None:
        return None
    config, token = access
    return Client(
        config=config,
        namespace=cloud.settings.namespace,
        timeout=REQUEST_TIMEOUT,
        field_manager=FIELD_MANAGER,
        trust_env=False,
        transport=_transport(cloud, config, token),
    )


def service_get(
    cloud: Cloud, namespace: str, service: str, port: int, path: str, timeout: float
) -> httpx2.Response:
    """GET `path` of a Service through the API server's service proxy
    (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`): how the deploy reaches a Service inside the
    cluster from outside it, in AWS as locally. `OSError` (an `httpx2.HTTPError`) when it cannot."""
    access = _access(cloud)
    if access is None:
        raise ConnectionError("the cluster does not exist")
    config, token = access
    assert config.cluster is not None
    url = f"{config.cluster.server.rstrip('/')}/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"
    with httpx2.Client(transport=_transport(cloud, config, token), timeout=timeout) as client:
        try:
            return client.get(url + path)
        except httpx2.HTTPError as err:
            raise ConnectionError(str(err)) from err


def _access(cloud: Cloud) -> tuple[SingleConfig, Callable[[], str] | None] | None:
    """The cluster's connection settings and, for EKS, its token maker; None while there is no cluster."""
    settings = cloud.settings
    if settings.kube_access == "kubeconfig":
        assert settings.kubeconfig is not None, "Settings requires kubeconfig with kube_access kubeconfig"
        config = _answering(settings.kubeconfig)
        if config is None:
            if _describe_cluster(cloud) is None:
                return None  # no cluster yet, or a kubeconfig a deleted cluster left behind
            config = _wait_for_api(settings.kubeconfig, KUBECONFIG_WAIT_SECONDS)
        return config, None
    cluster = _describe_cluster(cloud)
    if cluster is None:
        return None
    ca_data = str((cluster.get("certificateAuthority") or {}).get("data") or "")
    eks_config = KubeConfig.from_one(
        cluster=Cluster(server=cluster["endpoint"], certificate_auth_data=ca_data or None),
        user=User(),
        context_name=settings.cluster_name,
    ).get()
    assert eks_config is not None, "from_one sets the current context"
    return eks_config, EksToken(cloud, settings.cluster_name)


def _describe_cluster(cloud: Cloud) -> dict[str, Any] | None:
    eks = cloud.client("eks")
    try:
        return eks.describe_cluster(name=cloud.settings.cluster_name)["cluster"]  # type: ignore[no-any-return]
    except eks.exceptions.ResourceNotFoundException:
        return None


def _wait_for_api(path: Path, within: float) -> SingleConfig:
    """The kubeconfig at `path` once the API it names answers: the local cloud writes (or rewrites, for
    a cluster made again) the file a moment after the EKS cluster turns ACTIVE."""
    deadline = time.monotonic() + within
    while True:
        config = _answering(path)
        if config is not None:
            return config
        if time.monotonic() > deadline:
            raise KubeAccessError(
                f"the EKS cluster exists but the API its kubeconfig {path} names "
                f"did not answer in {within:.0f} s"
            )
        time.sleep(0.5)


def _answering(path: Path) -> SingleConfig | None:
    """The kubeconfig at `path` if its API server takes connections, else None."""
    config = KubeConfig.from_file(path).get() if path.exists() else None
    if config is None:
        return None
    try:
        httpx2.get(f"{config.cluster.server.rstrip('/')}/readyz", timeout=2, verify=False)
    except httpx2.HTTPError:
        return None
    return config


def _transport(cloud: Cloud, config: SingleConfig, token: Callable[[], str] | None) -> CountingTransport:
    assert config.cluster is not None
    try:
        verify = verify_cluster(config.cluster, config.user, config.abs_file)  # type: ignore[arg-type]
    except (ssl.SSLError, binascii.Error, ValueError) as err:
        raise KubeAccessError(f"the cluster's CA certificate is unusable: {err}") from None
    return CountingTransport(httpx2.HTTPTransport(verify=verify), cloud.count_kube_call, token)


def verb_of(request: httpx2.Request) -> str:
    """The Kubernetes verb of an HTTP request, as the API server's audit log names it (roughly)."""
    method = request.method.upper()
    if method == "GET":
        return "watch" if request.url.params.get("watch") in ("true", "1") else "get"
    if method == "PATCH":
        return "apply" if request.headers.get("content-type", "").startswith(APPLY_PATCH) else "patch"
    return {"POST": "create", "PUT": "update", "DELETE": "delete"}.get(method, method.lower())


class CountingTransport(httpx2.BaseTransport):
    """Counts each request by verb and, for EKS, puts the current bearer token on it."""

    def __init__(
        self, inner: httpx2.BaseTransport, count: Callable[[str], None], token: Callable[[], str] | None
    ) -> None:
        self.inner = inner
        self.count = count
        self.token = token

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.count(verb_of(request))
        if self.token is not None:
            request.headers["Authorization"] = f"Bearer {self.token()}"
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class EksToken:
    """A bearer token for an EKS cluster, made as `aws eks get-token` does, renewed before it expires."""

    def __init__(self, cloud: Cloud, cluster_name: str) -> None:
        self.cloud = cloud
        self.cluster_name = cluster_name
        self._token = ""
        self._made = 0.0

    def __call__(self) -> str:
        if not self._token or time.monotonic() - self._made > TOKEN_REFRESH_SECONDS:
            self._token = eks_token(self.cloud, self.cluster_name)
            self._made = time.monotonic()
        return self._token


def eks_token(cloud: Cloud, cluster_name: str) -> str:
    """`k8s-aws-v1.` + base64url (unpadded) of a presigned STS GetCallerIdentity URL that signs the header
    `x-k8s-aws-id: <cluster_name>`; signing is local (no AWS call)."""
    sts = cloud.client("sts")
    region = cloud.settings.region
    credentials = cloud.session.get_credentials()
    if credentials is None:
        raise KubeAccessError("no AWS credentials to make an EKS token with")
    signer = RequestSigner(
        sts.meta.service_model.service_id,
        region,
        "sts",
        "v4",
        credentials,
        cloud.session.events,
    )
    url = signer.generate_presigned_url(
        {
            "method": "GET",
            "url": f"{sts.meta.endpoint_url.rstrip('/')}/?Action=GetCallerIdentity&Version=2011-06-15",
            "body": {},
            "headers": {"x-k8s-aws-id": cluster_name},
            "context": {},
        },
        region_name=region,
        expires_in=TOKEN_URL_EXPIRY_SECONDS,
        operation_name="",
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")

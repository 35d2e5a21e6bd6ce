"""How the deploy reaches Kubernetes (`infra.k8s.access`): the EKS token as `aws eks get-token` makes it,
the verbs it counts, and what it returns while the EKS cluster does not exist (against the real AWS
emulator)."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from infra.cloud import Cloud
from infra.k8s import access
from infra.settings import Settings
from tests.support.pyinfra_run import emulator_data

pytestmark = pytest.mark.timeout(60)


def _decoded(token: str) -> str:
    assert token.startswith("k8s-aws-v1.")
    body = token.removeprefix("k8s-aws-v1.")
    assert "=" not in body, "base64url without padding"
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def test_eks_token_is_a_presigned_get_caller_identity_bound_to_the_cluster() -> None:
    settings = Settings.parse(
        {"stage": "aws", "account_id": "123456789012", "static_credentials": ["AKIDEXAMPLE", "secret"]}
    )
    url = urlsplit(_decoded(access.eks_token(Cloud(settings), "shopstack")))
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert url.scheme == "https"
    assert url.hostname is not None
    assert url.hostname.startswith("sts.")
    assert query["Action"] == "GetCallerIdentity"
    assert query["Version"] == "2011-06-15"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Credential"].startswith("AKIDEXAMPLE/")
    assert query["X-Amz-Credential"].endswith("/us-east-1/sts/aws4_request")
    assert query["X-Amz-Expires"] == "60"
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"].split(";")
    assert len(query["X-Amz-Signature"]) == 64


def test_eks_token_is_renewed_only_when_old(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.parse(
        {"stage": "aws", "account_id": "123456789012", "static_credentials": ["a", "b"]}
    )
    token = access.EksToken(Cloud(settings), "shopstack")
    first = token()
    assert token() == first
    monkeypatch.setattr(access, "TOKEN_REFRESH_SECONDS", -1.0)
    assert _decoded(token()).startswith("https://sts.")


@pytest.mark.parametrize(
    ("method", "url", "headers", "verb"),
    [
        ("GET", "http://k/api/v1/namespaces/a/pods", {}, "get"),
        ("GET", "http://k/api/v1/pods?watch=true", {}, "watch"),
        ("PATCH", "http://k/apis/apps/v1/x", {"content-type": "application/apply-patch+yaml"}, "apply"),
        ("PATCH", "http://k/apis/apps/v1/x", {"content-type": "application/merge-patch+json"}, "patch"),
        ("POST", "http://k/api/v1/namespaces", {}, "create"),
        ("PUT", "http://k/api/v1/namespaces/a", {}, "update"),
        ("DELETE", "http://k/api/v1/namespaces/a", {}, "delete"),
    ],
)
def test_requests_are_counted_by_verb(method: str, url: str, headers: dict[str, str], verb: str) -> None:
    assert access.verb_of(httpx2.Request(method, url, headers=headers)) == verb


def test_no_client_while_the_eks_cluster_does_not_exist(moto_endpoint: str, tmp_path: Path) -> None:
    for kube_access in ("kubeconfig", "eks-token"):
        data = emulator_data(moto_endpoint, kube_access=kube_access, kubeconfig=str(tmp_path / "absent"))
        cloud = Cloud(Settings.parse(data))
        assert access.connect(cloud) is None
        assert cloud.calls["aws eks"] == 1


def test_a_missing_kubeconfig_of_an_existing_cluster_is_waited_for_then_named(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = emulator_data(moto_endpoint, kube_access="kubeconfig", kubeconfig=str(tmp_path / "later"))
    cloud = Cloud(Settings.parse(data))
    cloud.client("eks").create_cluster(
        name=cloud.settings.cluster_name,
        roleArn="arn:aws:iam::123456789012:role/cluster",
        resourcesVpcConfig={"subnetIds": []},
    )
    monkeypatch.setattr(access, "KUBECONFIG_WAIT_SECONDS", 1.0)
    with pytest.raises(access.KubeAccessError, match=r"kubeconfig .*later names did not answer in 1 s"):
        access.connect(cloud)


def test_a_kubeconfig_left_by_a_deleted_cluster_gives_no_client(moto_endpoint: str, tmp_path: Path) -> None:
    stale = tmp_path / "stale"
    stale.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: c, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: c}}]\n"
    )
    data = emulator_data(moto_endpoint, kube_access="kubeconfig", kubeconfig=str(stale), project="gone")
    assert access.connect(Cloud(Settings.parse(data))) is None

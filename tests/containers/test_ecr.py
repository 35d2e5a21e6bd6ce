"""ECR as a push target: the token (against moto) and the registry's auth challenges (basic, bearer)."""

from __future__ import annotations

import base64
import re

import boto3
import httpx
import pytest
from moto import mock_aws

from containers.ecr import login
from containers.registry import Credentials, Registry, api_url, reference_host


@pytest.fixture
def aws_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def test_an_ecr_token_becomes_basic_credentials_for_the_account_registry(aws_settings: None) -> None:
    with mock_aws():
        ecr = login("eu-west-1")
        token = boto3.client("ecr", region_name="eu-west-1").get_authorization_token()
    assert re.fullmatch(r"\d{12}\.dkr\.ecr\.eu-west-1\.amazonaws\.com", ecr.registry)
    assert ecr.credentials.username == "AWS"
    assert ecr.credentials.password
    encoded = token["authorizationData"][0]["authorizationToken"]
    assert base64.b64decode(encoded).decode() == f"AWS:{ecr.credentials.password}"
    assert api_url(ecr.registry) == f"https://{ecr.registry}"


def test_basic_auth_is_sent_after_the_registrys_challenge() -> None:
    seen: list[str | None] = []

    def registry(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if request.headers.get("authorization") != "Basic " + base64.b64encode(b"AWS:secret").decode():
            return httpx.Response(401, headers={"www-authenticate": 'Basic realm="ecr"'})
        return httpx.Response(200, json={})

    with Registry(
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        Credentials("AWS", "secret"),
        transport=httpx.MockTransport(registry),
    ) as client:
        client.ping()
        client.ping()
    assert seen[0] is None
    assert seen[1] is not None
    assert seen[2] == seen[1]


def test_a_bearer_token_is_fetched_from_the_realm_for_the_challenged_scope() -> None:
    def registry(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            assert request.url.params["scope"] == "repository:library/python:pull"
            assert request.url.params["service"] == "registry.example"
            return httpx.Response(200, json={"token": "t0ken"})
        if request.headers.get("authorization") == "Bearer t0ken":
            return httpx.Response(200, content=b"{}", headers={"content-type": "application/json"})
        challenge = (
            'Bearer realm="https://auth.example/token",service="registry.example",'
            'scope="repository:library/python:pull"'
        )
        return httpx.Response(401, headers={"www-authenticate": challenge})

    with Registry("registry.example", transport=httpx.MockTransport(registry)) as client:
        client.ping()


def test_registry_addresses() -> None:
    assert api_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert api_url("localhost:5000") == "http://localhost:5000"
    assert api_url("registry.example") == "https://registry.example"
    assert api_url("docker.io") == "https://registry-1.docker.io"
    assert reference_host("http://127.0.0.1:5000/") == "127.0.0.1:5000"

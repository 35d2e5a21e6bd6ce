"""Amazon ECR as a push target: its registry host and the basic-auth credentials of an ECR token.

`GetAuthorizationToken` returns base64("AWS:<password>") and the registry's endpoint; the token is
valid for 12 hours and is used as HTTP basic auth on the distribution API.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from containers.errors import ContainersError
from containers.registry import Credentials


@dataclass(frozen=True)
class EcrLogin:
    registry: str
    credentials: Credentials


def login(region: str | None = None, client: Any = None) -> EcrLogin:
    """An ECR login from the standard AWS settings (or the given boto3 ECR client)."""
    if client is None:
        try:
            import boto3
        except ImportError as err:
            raise ContainersError("--ecr needs boto3 (in the `images` dependency group)") from err
        client = boto3.client("ecr", region_name=region)
    try:
        data = client.get_authorization_token()["authorizationData"][0]
    except Exception as err:
        raise ContainersError(f"ECR get_authorization_token failed: {err}") from err
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    if not password:
        raise ContainersError("ECR returned an authorization token that is not user:password")
    host = urlsplit(data["proxyEndpoint"]).netloc or data["proxyEndpoint"]
    return EcrLogin(host, Credentials(username, password))

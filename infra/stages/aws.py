"""A real AWS account as the deploy's target (`inventory/aws.py`): nothing of the local cloud is loaded."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from infra.stages import TargetError, settings_file


def aws_account(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Host data for a real AWS account: its id must be given, and credentials must be found."""
    import boto3

    account_id = env.get("SHOPSTACK_AWS_ACCOUNT_ID", "")
    if not account_id:
        raise TargetError("set SHOPSTACK_AWS_ACCOUNT_ID to the 12-digit id of the account to deploy into")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise TargetError("set AWS_REGION (or AWS_DEFAULT_REGION) to the region to deploy into")
    if boto3.Session(region_name=region).get_credentials() is None:
        raise TargetError(
            "no AWS credentials found (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO or an "
            "instance role): log in first, e.g. `aws sso login`"
        )
    return {
        "stage": "aws",
        "account_id": account_id,
        "region": region,
        "image_publisher": "ecr",
        "kube_access": "eks-token",
        **settings_file(env),
    }

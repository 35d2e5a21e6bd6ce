"""The deploy's state backend: the S3 bucket its records live in and the DynamoDB table its lock lives in.

The bucket is versioned (an overwritten record can be recovered), encrypted by default, closed to the
public, TLS-only where the inventory asks for it (the local inventory does not: the emulator speaks plain
HTTP and such a policy would lock the deploy out of its own bucket), and expires old versions. Each of these
properties is read by the `StateBucket` fact and only the ones that differ are changed.

Default encryption is SSE-S3 (AES256), not aws:kms: the bucket holds deploy records (who deployed which
digests), nothing secret, and SSE-S3 needs no key to manage or pay for, no KMS grants for whoever reads the
records, and no KMS request quota; it encrypts every object at rest all the same.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

from botocore.exceptions import ClientError
from pyinfra.api.command import FunctionCommand
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State
from pyinfra.context import host

from infra.aws.tables import TableSpec, table_commands
from infra.aws.tags import tag_list, tags
from infra.cloud import Cloud, cloud_of
from infra.fact import ApiFact

LIFECYCLE_RULE = "expire-old-versions"
ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
#: S3's error codes for "this bucket has no such configuration"
_ABSENT = {
    "ServerSideEncryptionConfigurationNotFoundError",
    "NoSuchPublicAccessBlockConfiguration",
    "NoSuchBucketPolicy",
    "NoSuchLifecycleConfiguration",
}

BucketState = dict[str, Any]


def _read(call: Any, key: str, **arguments: Any) -> Any:
    try:
        return call(**arguments)[key]
    except ClientError as err:
        if err.response["Error"]["Code"] in _ABSENT:
            return None
        raise


class StateBucket(ApiFact[BucketState | None]):
    """The bucket's versioning, default encryption, public access block, policy and lifecycle rules;
    None when it does not exist."""

    def command(self, bucket_name: str) -> str:
        return self.request(bucket_name=bucket_name)

    def read(self, cloud: Cloud, bucket_name: str) -> BucketState | None:  # type: ignore[override]
        s3 = cloud.client("s3")
        try:
            s3.head_bucket(Bucket=bucket_name)
        except ClientError as err:
            if err.response["Error"]["Code"] in {"404", "NoSuchBucket"}:
                return None
            raise
        policy = _read(s3.get_bucket_policy, "Policy", Bucket=bucket_name)
        return {
            "versioning": s3.get_bucket_versioning(Bucket=bucket_name).get("Status"),
            "encryption": _read(
                s3.get_bucket_encryption, "ServerSideEncryptionConfiguration", Bucket=bucket_name
            ),
            "public_access_block": _read(
                s3.get_public_access_block, "PublicAccessBlockConfiguration", Bucket=bucket_name
            ),
            "policy": json.loads(policy) if policy else None,
            "lifecycle": _read(s3.get_bucket_lifecycle_configuration, "Rules", Bucket=bucket_name),
        }


def tls_only_policy(bucket_name: str) -> dict[str, Any]:
    """A policy denying every request to the bucket that does not come over TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket_name}", f"arn:aws:s3:::{bucket_name}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def lifecycle_rules(noncurrent_days: int, multipart_days: int) -> list[dict[str, Any]]:
    return [
        {
            "ID": LIFECYCLE_RULE,
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": multipart_days},
        }
    ]


def _encryption_matches(current: dict[str, Any] | None) -> bool:
    rules = (current or {}).get("Rules") or []
    return any(
        (rule.get("ApplyServerSideEncryptionByDefault") or {}).get("SSEAlgorithm") == "AES256"
        for rule in rules
    )


@operation()
def state_bucket(
    noncurrent_days: int = 90, multipart_days: int = 7, present: bool = True
) -> Generator[FunctionCommand, None, None]:
    """The state bucket `settings.state_bucket`: versioned, encrypted, private, TLS-only where the
    inventory says so, old versions expired after `noncurrent_days`, unfinished uploads after
    `multipart_days`. `present=False` deletes it with every version of every object in it."""
    settings = cloud_of(host).settings
    bucket_name = settings.state_bucket
    current = host.get_fact(StateBucket, bucket_name=bucket_name)
    if not present:
        if current is None:
            host.noop(f"bucket {bucket_name} does not exist")
        else:
            yield FunctionCommand(_delete_bucket, (bucket_name,), {})
        return
    if current is None:
        yield FunctionCommand(_create_bucket, (bucket_name,), {})
        current = {}
    policy = tls_only_policy(bucket_name) if settings.state_bucket_tls_only else None
    rules = lifecycle_rules(noncurrent_days, multipart_days)
    changes: list[tuple[str, dict[str, Any]]] = []
    if current.get("versioning") != "Enabled":
        changes.append(("put_bucket_versioning", {"VersioningConfiguration": {"Status": "Enabled"}}))
    if not _encryption_matches(current.get("encryption")):
        changes.append(("put_bucket_encryption", {"ServerSideEncryptionConfiguration": ENCRYPTION}))
    if current.get("public_access_block") != PUBLIC_ACCESS_BLOCK:
        changes.append(("put_public_access_block", {"PublicAccessBlockConfiguration": PUBLIC_ACCESS_BLOCK}))
    if current.get("lifecycle") != rules:
        changes.append(("put_bucket_lifecycle_configuration", {"LifecycleConfiguration": {"Rules": rules}}))
    # the policy goes last: a TLS-only one refuses the plain-HTTP calls after it (the emulator's)
    if current.get("policy") != policy:
        if policy is None:
            changes.append(("delete_bucket_policy", {}))
        else:
            changes.append(("put_bucket_policy", {"Policy": json.dumps(policy)}))
    for method, arguments in changes:
        yield FunctionCommand(_configure, (bucket_name, method, arguments), {})
    if current and not changes:
        host.noop(f"bucket {bucket_name} is versioned, encrypted, private and expires old versions")


def _create_bucket(state: State, host: Host, bucket_name: str) -> None:
    cloud = cloud_of(host)
    s3 = cloud.client("s3")
    region = cloud.settings.region
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket_name, **location)
    s3.get_waiter("bucket_exists").wait(Bucket=bucket_name, WaiterConfig={"Delay": 2, "MaxAttempts": 30})
    s3.put_bucket_tagging(
        Bucket=bucket_name, Tagging={"TagSet": tag_list(tags(cloud.settings.project, bucket_name))}
    )


def _configure(state: State, host: Host, bucket_name: str, method: str, arguments: dict[str, Any]) -> None:
    getattr(cloud_of(host).client("s3"), method)(Bucket=bucket_name, **arguments)


def _delete_bucket(state: State, host: Host, bucket_name: str) -> None:
    s3 = cloud_of(host).client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket_name):
        objects = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in (*page.get("Versions", []), *page.get("DeleteMarkers", []))
        ]
        if objects:
            s3.delete_objects(Bucket=bucket_name, Delete={"Objects": objects, "Quiet": True})
    s3.delete_bucket(Bucket=bucket_name)


@operation()
def lock_table(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The deploy lock's table `settings.lock_table`: hash key `LockID`, on-demand, encrypted, with
    point-in-time recovery."""
    yield from table_commands(TableSpec(cloud_of(host).settings.lock_table, "LockID"), present)

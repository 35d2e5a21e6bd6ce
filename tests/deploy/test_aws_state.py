"""The state backend (bucket + lock table) and the data tables, deployed by the real pyinfra CLI into the
AWS emulator: created with every setting, unchanged by a second run, drift shown by `--dry` and repaired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.settings import Settings
from tests.support.pyinfra_run import Run, emulator_client, emulator_data, run_pyinfra

DEPLOY = """
from infra.aws import state, tables
state.state_bucket(name="state bucket")
state.lock_table(name="lock table")
tables.data_tables(name="data tables")
"""


def planned_changes(run: Run) -> set[str]:
    """The operations a `--dry --json` run says will change something."""
    assert run.returncode == 0, run.output
    return {op["name"] for op in run.results()["plan"] if op["hosts_with_change"]}


def changed(run: Run) -> int:
    assert run.returncode == 0, run.output
    return int(run.results()["results"]["totals"]["success"])


@pytest.fixture(scope="module")
def settings(moto_endpoint: str) -> Settings:
    return Settings.parse(emulator_data(moto_endpoint))


@pytest.fixture(scope="module")
def first_run(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_pyinfra(tmp_path_factory.mktemp("first"), emulator_data(moto_endpoint), DEPLOY, "--json")


def test_first_run_creates_the_state_bucket_with_every_setting(
    first_run: Run, moto_endpoint: str, settings: Settings
) -> None:
    assert changed(first_run) == 3
    s3 = emulator_client(moto_endpoint, "s3")
    bucket = settings.state_bucket
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert set(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values()) == {True}
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90
    assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("lock_table", "LockID"),
        ("carts_table", "user_id"),
        ("orders_table", "order_id"),
        ("checkouts_table", "checkout_key"),
    ],
)
def test_first_run_creates_encrypted_on_demand_tables_with_point_in_time_recovery(
    first_run: Run, moto_endpoint: str, settings: Settings, table: str, key: str
) -> None:
    assert first_run.returncode == 0, first_run.output
    dynamodb = emulator_client(moto_endpoint, "dynamodb")
    name = getattr(settings, table)
    description = dynamodb.describe_table(TableName=name)["Table"]
    assert description["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert description["SSEDescription"]["Status"] == "ENABLED"
    backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_the_checkouts_table_forgets_each_checkout_at_its_expires_at(
    first_run: Run, moto_endpoint: str, settings: Settings
) -> None:
    assert first_run.returncode == 0, first_run.output
    ttl = emulator_client(moto_endpoint, "dynamodb").describe_time_to_live(TableName=settings.checkouts_table)
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_second_run_changes_nothing(first_run: Run, moto_endpoint: str, tmp_path: Path) -> None:
    assert first_run.returncode == 0, first_run.output
    assert changed(run_pyinfra(tmp_path, emulator_data(moto_endpoint), DEPLOY, "--json")) == 0


def test_drift_is_shown_by_dry_and_repaired_by_the_next_run(
    first_run: Run, moto_endpoint: str, settings: Settings, tmp_path: Path
) -> None:
    assert first_run.returncode == 0, first_run.output
    s3, dynamodb = emulator_client(moto_endpoint, "s3"), emulator_client(moto_endpoint, "dynamodb")
    s3.put_bucket_versioning(Bucket=settings.state_bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.delete_public_access_block(Bucket=settings.state_bucket)
    dynamodb.update_continuous_backups(
        TableName=settings.orders_table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False},
    )
    dynamodb.update_time_to_live(
        TableName=settings.checkouts_table,
        TimeToLiveSpecification={"Enabled": False, "AttributeName": "expires_at"},
    )
    data = emulator_data(moto_endpoint)

    assert planned_changes(run_pyinfra(tmp_path, data, DEPLOY, "--dry", "--json")) == {
        "state bucket",
        "data tables",
    }
    assert s3.get_bucket_versioning(Bucket=settings.state_bucket)["Status"] == "Suspended", "--dry changed it"

    assert changed(run_pyinfra(tmp_path, data, DEPLOY, "--json")) == 2
    assert s3.get_bucket_versioning(Bucket=settings.state_bucket)["Status"] == "Enabled"
    assert set(
        s3.get_public_access_block(Bucket=settings.state_bucket)["PublicAccessBlockConfiguration"].values()
    ) == {True}
    backups = dynamodb.describe_continuous_backups(TableName=settings.orders_table)[
        "ContinuousBackupsDescription"
    ]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    ttl = dynamodb.describe_time_to_live(TableName=settings.checkouts_table)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"
    assert planned_changes(run_pyinfra(tmp_path, data, DEPLOY, "--dry", "--json")) == set()


def test_tls_only_bucket_gets_a_policy_denying_plain_http(moto_endpoint: str, tmp_path: Path) -> None:
    data = emulator_data(moto_endpoint, project="tlsonly", state_bucket_tls_only=True)
    run = run_pyinfra(
        tmp_path, data, 'from infra.aws import state\nstate.state_bucket(name="state bucket")\n'
    )
    assert run.returncode == 0, run.output
    s3 = emulator_client(moto_endpoint, "s3")
    bucket = Settings.parse(data).state_bucket
    with pytest.raises(s3.exceptions.ClientError, match=r"AccessDenied|Forbidden"):
        s3.put_object(Bucket=bucket, Key="records/x.json", Body=b"{}")
    (statement,) = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_removal_deletes_the_bucket_and_its_versions(moto_endpoint: str, tmp_path: Path) -> None:
    data = emulator_data(moto_endpoint, project="removed")
    bucket = Settings.parse(data).state_bucket
    assert run_pyinfra(tmp_path, data, "from infra.aws import state\nstate.state_bucket()\n").returncode == 0
    s3 = emulator_client(moto_endpoint, "s3")
    for body in (b"1", b"2"):
        s3.put_object(Bucket=bucket, Key="records/latest.json", Body=body)
    run = run_pyinfra(tmp_path, data, "from infra.aws import state\nstate.state_bucket(present=False)\n")
    assert run.returncode == 0, run.output
    assert bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}

"""The deploy lock and the deploy record, through the real pyinfra CLI against the AWS emulator: a held lock
stops a second deploy with the holder named and nothing changed; a failed deploy releases its lock; a stale
lock is broken on purpose; each deploy records who, what and which operations changed something."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from infra.settings import Settings
from tests.support.pyinfra_run import emulator_client, emulator_data, run_pyinfra

BACKEND = """
from infra.aws import lock, state
state.state_bucket(name="state bucket")
state.lock_table(name="lock table")
lock.acquire_lock(command="pyinfra test deploy.py", name="take the deploy lock")
"""
DEPLOY = (
    BACKEND
    + """
from infra.aws import tables
tables.data_tables(name="data tables")
lock.release_lock(name="release the deploy lock")
"""
)
FAILING = (
    BACKEND
    + """
from pyinfra.api.command import FunctionCommand
from pyinfra.api.operation import operation

def fail(state, host):
    raise RuntimeError("this deploy fails midway")

@operation()
def failing_step():
    yield FunctionCommand(fail, (), {})

failing_step(name="a failing step")
"""
)
HOLDER = "alice@laptop pid 4242"


def hold_lock(endpoint: str, settings: Settings, expires_in: int) -> None:
    """Another deploy's lock, as its acquire_lock writes it."""
    emulator_client(endpoint, "dynamodb").put_item(
        TableName=settings.lock_table,
        Item={
            "LockID": {"S": f"{settings.project}/deploy"},
            "owner": {"S": HOLDER},
            "token": {"S": "theirs"},
            "time": {"S": "2026-12-01T09:30:00Z"},
            "command": {"S": "pyinfra inventory/aws.py deploy.py"},
            "expires": {"N": str(int(time.time()) + expires_in)},
        },
    )


def lock_item(endpoint: str, settings: Settings) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        emulator_client(endpoint, "dynamodb")
        .get_item(
            TableName=settings.lock_table,
            Key={"LockID": {"S": f"{settings.project}/deploy"}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return item


def tables(endpoint: str) -> set[str]:
    return set(emulator_client(endpoint, "dynamodb").list_tables()["TableNames"])


def test_a_held_lock_stops_a_second_deploy_naming_the_holder(moto_endpoint: str, tmp_path: Path) -> None:
    data = emulator_data(moto_endpoint, project="heldlock")
    settings = Settings.parse(data)
    assert run_pyinfra(tmp_path, data, DEPLOY).returncode == 0
    emulator_client(moto_endpoint, "dynamodb").delete_table(TableName=settings.carts_table)
    hold_lock(moto_endpoint, settings, expires_in=3600)

    run = run_pyinfra(tmp_path, data, DEPLOY)

    assert run.returncode != 0
    lines = [line for line in run.output.splitlines() if "is held by" in line]
    assert len(lines) == 1, run.output
    assert HOLDER in lines[0]
    assert "2026-12-01T09:30:00Z" in lines[0]
    assert "pyinfra inventory/aws.py deploy.py" in lines[0]
    assert "--data break_lock=true" in lines[0]
    assert "Traceback" not in run.output
    assert settings.carts_table not in tables(moto_endpoint), "the data tables ran without the lock"
    assert (lock_item(moto_endpoint, settings) or {})["owner"]["S"] == HOLDER, "the holder's lock was touched"


def test_a_failed_deploy_releases_its_lock(moto_endpoint: str, tmp_path: Path) -> None:
    data = emulator_data(moto_endpoint, project="failedrun")
    settings = Settings.parse(data)

    run = run_pyinfra(tmp_path, data, FAILING)

    assert run.returncode != 0
    assert "took the deploy lock" in run.output
    assert "this deploy fails midway" in run.output
    assert "released the deploy lock" in run.output
    assert lock_item(moto_endpoint, settings) is None
    assert run_pyinfra(tmp_path, data, DEPLOY).returncode == 0, "the next deploy could not take the lock"


def test_break_lock_takes_a_stale_lock_and_says_whose(moto_endpoint: str, tmp_path: Path) -> None:
    data = emulator_data(moto_endpoint, project="breaklock")
    settings = Settings.parse(data)
    assert run_pyinfra(tmp_path, data, DEPLOY).returncode == 0
    hold_lock(moto_endpoint, settings, expires_in=3600)
    assert run_pyinfra(tmp_path, data, DEPLOY).returncode != 0

    run = run_pyinfra(tmp_path, data, DEPLOY, "--data", "break_lock=true")

    assert run.returncode == 0, run.output
    assert f"broke the deploy lock of {HOLDER}" in run.output
    assert lock_item(moto_endpoint, settings) is None, "the broken lock was not released at the end"


def test_an_expired_lock_is_taken_without_breaking_it(moto_endpoint: str, tmp_path: Path) -> None:
    data = emulator_data(moto_endpoint, project="expired")
    settings = Settings.parse(data)
    assert run_pyinfra(tmp_path, data, DEPLOY).returncode == 0
    hold_lock(moto_endpoint, settings, expires_in=-60)

    run = run_pyinfra(tmp_path, data, DEPLOY)

    assert run.returncode == 0, run.output
    assert "broke" not in run.output
    assert lock_item(moto_endpoint, settings) is None


def test_the_record_names_what_changed_and_the_image_digests(moto_endpoint: str, tmp_path: Path) -> None:
    images = {"payment": "shopstack/payment@sha256:" + "ab" * 32}
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "images.json").write_text(json.dumps(images))
    data = emulator_data(moto_endpoint, project="recorded", build_dir=str(tmp_path / "build"))
    settings = Settings.parse(data)
    deploy = DEPLOY.replace(
        "lock.release_lock(",
        'from infra.aws import record\nrecord.deploy_record(name="deploy record")\nlock.release_lock(',
    )

    assert run_pyinfra(tmp_path, data, deploy).returncode == 0
    emulator_client(moto_endpoint, "dynamodb").update_continuous_backups(
        TableName=settings.orders_table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False},
    )
    run = run_pyinfra(tmp_path, data, deploy)
    assert run.returncode == 0, run.output

    s3 = emulator_client(moto_endpoint, "s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=settings.state_bucket, Prefix="records/")["Contents"]]
    assert len(keys) == 3
    assert "records/latest.json" in keys
    latest = json.loads(s3.get_object(Bucket=settings.state_bucket, Key="records/latest.json")["Body"].read())
    assert latest["changed"] == ["data tables"]
    assert latest["images"] == images
    assert latest["stage"] == "local"
    assert "@" in latest["who"]
    assert latest["git"]["commit"] != ""
    assert "deploy_" in latest["command"]

    shown = run_pyinfra(
        tmp_path,
        data,
        "import json\nfrom pyinfra import host\nfrom infra.aws.record import LatestRecord\n"
        f"print('RECORD', json.dumps(host.get_fact(LatestRecord, bucket_name={settings.state_bucket!r})))\n",
    )
    line = next(line for line in shown.output.splitlines() if line.startswith("RECORD "))
    assert json.loads(line.removeprefix("RECORD ")) == latest

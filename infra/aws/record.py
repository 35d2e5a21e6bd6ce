"""The deploy record: what each deploy did, written to the state bucket at its end.

`records/<UTC timestamp>-<short id>.json` per deploy and `records/latest.json` for the last one (the
bucket is versioned, so earlier `latest.json` versions remain too). A record says who deployed (user@host),
when, from which git revision (and whether the tree had uncommitted changes), with which image digests
(build/images.json), by which command line, to which stage, and which operations of the run changed
something, as pyinfra's own results say. The lock operations are bookkeeping, not changes: left out.
"""

from __future__ import annotations

import getpass
import json
import shlex
import socket
import subprocess
import sys
import uuid
from collections.abc import Generator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from pyinfra.api.command import FunctionCommand
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State

from containers.errors import ContainersError
from containers.imagesjson import ImagesFile
from infra.aws.lock import bookkeeping_ops
from infra.cloud import Cloud, cloud_of
from infra.fact import ApiFact

REPO = Path(__file__).resolve().parents[2]
LATEST = "records/latest.json"


class LatestRecord(ApiFact[dict[str, Any] | None]):
    """The last deploy's record, or None when no deploy has written one (or there is no bucket yet).
    `bucket_name` defaults to the host's state bucket:
    `pyinfra inventory/local.py fact infra.aws.record.LatestRecord` shows it."""

    def command(self, bucket_name: str | None = None) -> str:
        return self.request(bucket_name=bucket_name)

    def read(self, cloud: Cloud, bucket_name: str | None = None) -> dict[str, Any] | None:  # type: ignore[override]
        bucket = bucket_name or cloud.settings.state_bucket
        try:
            body = cloud.client("s3").get_object(Bucket=bucket, Key=LATEST)["Body"].read()
        except ClientError as err:
            if err.response["Error"]["Code"] in {"NoSuchKey", "NoSuchBucket", "404"}:
                return None
            raise
        return json.loads(body)  # type: ignore[no-any-return]


def git_revision(repo: Path = REPO) -> dict[str, Any]:
    """`{"commit": <HEAD>, "dirty": bool}`, or `{"commit": "unknown", "dirty": None}` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def changed_operations(state: State, host: Host) -> list[str]:
    """The names of the operations of this run that changed something on `host`, in run order (the
    lock's operations and the running one left out)."""
    names = []
    for op_hash in state.get_op_order():  # type: ignore[no-untyped-call]
        op_data = state.ops[host].get(op_hash)
        if op_data is None or op_hash in bookkeeping_ops or op_hash == host.executing_op_hash:
            continue
        meta = op_data.operation_meta
        if meta.is_complete() and meta.did_change():
            names.append(", ".join(sorted(state.get_op_meta(op_hash).names)))
    return names


def _images(cloud: Cloud) -> dict[str, str]:
    try:
        return ImagesFile(cloud.settings.images_file).read()
    except ContainersError as err:
        return {"error": str(err)}


def _write_record(state: State, host: Host, command_line: str, live: Mapping[str, str]) -> None:
    cloud = cloud_of(host)
    now = datetime.now(UTC)
    record = {
        "who": f"{getpass.getuser()}@{socket.gethostname()}",
        "when": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": git_revision(),
        "images": _images(cloud),
        "live": dict(live),
        "command": command_line,
        "stage": cloud.settings.stage,
        "changed": changed_operations(state, host),
    }
    body = json.dumps(record, indent=2).encode()
    key = f"records/{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}.json"
    s3 = cloud.client("s3")
    for target in (key, LATEST):
        s3.put_object(
            Bucket=cloud.settings.state_bucket, Key=target, Body=body, ContentType="application/json"
        )
    host.log_styled(
        f"deploy record s3://{cloud.settings.state_bucket}/{key}: {len(record['changed'])} "
        "operations changed something"
    )


@operation()
def deploy_record(
    command_line: str | None = None, live: Mapping[str, str] | None = None
) -> Generator[FunctionCommand, None, None]:
    """Write this run's record (`command_line` defaults to this process's); `live` names the colour that
    takes each blue-green service's traffic once the run is done."""
    command_line = command_line or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    yield FunctionCommand(_write_record, (command_line, live or {}), {})

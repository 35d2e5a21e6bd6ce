"""The deploy lock: one item in the lock table, so two deploys never change the same cloud at once.

`acquire_lock` is a conditional put of `LockID=<project>/deploy` that succeeds only when no lock is held
or the one held has expired; the item says who holds it (user@host and pid), since when, for which
command, and until when. A deploy that finds the lock held stops with one line naming the holder. A lock
left by a deploy that died can be broken on purpose (`--data break_lock=true`). The lock is released when
the run ends, failed or not (the connector's `on_disconnect`), and by `release_lock`, the deploy's last
operation; a release deletes only the lock this run took (conditional on its token).

Both operations are commands, not state: they always have one change to make, so they show in every plan.
In `--dry` mode nothing is taken, as no operation's commands run.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import time
import uuid
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from pyinfra.api.command import FunctionCommand
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State

from infra.cloud import cloud_of
from infra.connector import CloudConnector

log = logging.getLogger("pyinfra")

#: host name -> (owner, token) of the lock this process holds for that host
_held: dict[str, tuple[str, str]] = {}
#: the operation hashes of lock operations run here: bookkeeping, not changes (see infra.aws.record)
bookkeeping_ops: set[str] = set()


def lock_id(project: str) -> str:
    return f"{project}/deploy"


def this_owner() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"


def describe(item: dict[str, Any]) -> str:
    """`alice@laptop pid 42 since 2026-12-02T07:00:00Z running 'pyinfra ... deploy.py'` of a lock item."""
    return (
        f"{item.get('owner', {}).get('S', '?')} since {item.get('time', {}).get('S', '?')} "
        f"running {item.get('command', {}).get('S', '?')!r}"
    )


def _fail(host: Host, line: str) -> bool:
    """Fail the operation with one line (a FunctionCommand returning False fails without a traceback)."""
    host.log_styled(line, fg="red", log_func=log.error)
    return False


def _acquire(state: State, host: Host, command: str) -> bool:
    if host.executing_op_hash:
        bookkeeping_ops.add(host.executing_op_hash)
    cloud = cloud_of(host)
    settings = cloud.settings
    dynamodb = cloud.client("dynamodb")
    key = {"LockID": {"S": lock_id(settings.project)}}
    now = int(time.time())
    owner, token = this_owner(), uuid.uuid4().hex
    item = {
        **key,
        "owner": {"S": owner},
        "token": {"S": token},
        "time": {"S": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "command": {"S": command},
        "expires": {"N": str(now + settings.lock_ttl_seconds)},
    }
    if settings.break_lock:
        previous = dynamodb.get_item(TableName=settings.lock_table, Key=key, ConsistentRead=True).get("Item")
        dynamodb.put_item(TableName=settings.lock_table, Item=item)
        if previous:
            host.log_styled(
                f"broke the deploy lock of {describe(previous)}", fg="yellow", log_func=log.warning
            )
    else:
        try:
            dynamodb.put_item(
                TableName=settings.lock_table,
                Item=item,
                ConditionExpression="attribute_not_exists(LockID) OR expires < :now",
                ExpressionAttributeValues={":now": {"N": str(now)}},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            holder = dynamodb.get_item(TableName=settings.lock_table, Key=key, ConsistentRead=True).get(
                "Item"
            )
            return _fail(
                host,
                f"the deploy lock {lock_id(settings.project)} is held by {describe(holder or {})}; "
                "if that deploy is dead, break the lock with --data break_lock=true",
            )
    _held[host.name] = (owner, token)
    connector = host.connector
    if isinstance(connector, CloudConnector):
        connector.on_disconnect(lambda: _release_held(host))
    host.log_styled(f"took the deploy lock {lock_id(settings.project)} as {owner}", log_func=log.info)
    return True


def _release_held(host: Host) -> None:
    """Delete the lock this run took, if it still holds it; nothing otherwise."""
    held = _held.pop(host.name, None)
    if held is None:
        return
    owner, token = held
    cloud = cloud_of(host)
    try:
        cloud.client("dynamodb").delete_item(
            TableName=cloud.settings.lock_table,
            Key={"LockID": {"S": lock_id(cloud.settings.project)}},
            ConditionExpression="#owner = :owner AND #token = :token",
            ExpressionAttributeNames={"#owner": "owner", "#token": "token"},
            ExpressionAttributeValues={":owner": {"S": owner}, ":token": {"S": token}},
        )
    except ClientError as err:
        if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        host.log_styled(
            "the deploy lock was no longer ours (broken by another deploy): left as is",
            fg="yellow",
            log_func=log.warning,
        )
        return
    host.log_styled(f"released the deploy lock {lock_id(cloud.settings.project)}", log_func=log.info)


def _release(state: State, host: Host) -> None:
    if host.executing_op_hash:
        bookkeeping_ops.add(host.executing_op_hash)
    _release_held(host)


@operation()
def acquire_lock(command: str) -> Generator[FunctionCommand, None, None]:
    """Take the deploy lock for `command` (the command line shown to whoever finds the lock held)."""
    yield FunctionCommand(_acquire, (command,), {})


@operation()
def release_lock() -> Generator[FunctionCommand, None, None]:
    """Release the deploy lock this run took (the deploy's last operation)."""
    yield FunctionCommand(_release, (), {})

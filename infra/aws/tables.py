"""DynamoDB tables: the shop's carts, orders and checkouts tables, and what every table of the deploy has
in common.

Every table is on-demand, encrypted with a KMS key (SSE enabled) and has point-in-time recovery on. The
key schema is the services' (`services/cart/store.py` keys carts by `user_id`, `services/accounting/
ledger.py` orders by `order_id`, `services/checkout/idempotency.py` checkouts by `checkout_key`); a table
whose key schema differs cannot be changed in place, so that is one error line, not a change. A table whose
items expire names its TTL attribute (checkouts: `expires_at`), and DynamoDB deletes them once past it.
Drift in billing, SSE, point-in-time recovery or TTL is repaired. `table_commands` is the one
implementation; the lock table (`infra.aws.state.lock_table`) uses it too.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from pyinfra.api.command import FunctionCommand
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State
from pyinfra.context import host

from infra.aws.tags import tag_list, tags
from infra.changes import changes
from infra.cloud import Cloud, cloud_of
from infra.fact import ApiFact
from infra.failure import stop

TableState = dict[str, Any]
TTL_ON = ("ENABLED", "ENABLING")
#: services/checkout/idempotency.py's key and TTL attribute
CHECKOUTS_KEY = "checkout_key"
CHECKOUTS_TTL_ATTRIBUTE = "expires_at"


class DynamoTable(ApiFact[TableState | None]):
    """A table's key, billing mode, SSE, point-in-time recovery and TTL attribute; None when there is no
    such table."""

    def command(self, table_name: str) -> str:
        return self.request(table_name=table_name)

    def read(self, cloud: Cloud, table_name: str) -> TableState | None:  # type: ignore[override]
        dynamodb = cloud.client("dynamodb")
        try:
            table = dynamodb.describe_table(TableName=table_name)["Table"]
        except ClientError as err:
            if err.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        backups = dynamodb.describe_continuous_backups(TableName=table_name)["ContinuousBackupsDescription"]
        ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
        return {
            "status": table["TableStatus"],
            "key": [
                [k["AttributeName"], k["KeyType"], types.get(k["AttributeName"])] for k in table["KeySchema"]
            ],
            "billing": (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED"),
            "sse": (table.get("SSEDescription") or {}).get("Status") == "ENABLED",
            "pitr": backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED",
            "ttl": ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") in TTL_ON else None,
        }


@dataclass(frozen=True)
class TableSpec:
    """A table of the deploy: its name, its single string hash key and, if its items expire, the attribute
    that holds when (epoch seconds)."""

    table_name: str
    hash_key: str
    ttl_attribute: str | None = None

    @property
    def key(self) -> list[list[str]]:
        return [[self.hash_key, "HASH", "S"]]


def table_commands(spec: TableSpec, present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The commands that make the table `spec` so (or absent); `host.noop` for what already is."""
    current = host.get_fact(DynamoTable, table_name=spec.table_name)
    if not present:
        if current is None:
            host.noop(f"table {spec.table_name} does not exist")
        else:
            yield FunctionCommand(_delete, (spec.table_name,), {})
        return
    if current is None:
        yield FunctionCommand(_create, (spec,), {})
        return
    if current["key"] != spec.key:
        yield stop(
            f"table {spec.table_name} has key {current['key']}, the services need {spec.key}: "
            "a key cannot change in place; delete the table (its data!) to let the deploy recreate it"
        )
        return
    commands: list[FunctionCommand] = []
    if current["billing"] != "PAY_PER_REQUEST":
        commands.append(FunctionCommand(_update, (spec.table_name, {"BillingMode": "PAY_PER_REQUEST"}), {}))
    if not current["sse"]:
        commands.append(
            FunctionCommand(_update, (spec.table_name, {"SSESpecification": {"Enabled": True}}), {})
        )
    if not current["pitr"]:
        commands.append(FunctionCommand(_enable_pitr, (spec.table_name,), {}))
    if spec.ttl_attribute is not None and current["ttl"] != spec.ttl_attribute:
        commands.append(FunctionCommand(_enable_ttl, (spec.table_name, spec.ttl_attribute), {}))
    yield from changes(
        commands, f"table {spec.table_name} is on-demand, encrypted, with point-in-time recovery"
    )


def _create(state: State, host: Host, spec: TableSpec) -> None:
    cloud = cloud_of(host)
    dynamodb = cloud.client("dynamodb")
    dynamodb.create_table(
        TableName=spec.table_name,
        KeySchema=[{"AttributeName": spec.hash_key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": spec.hash_key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        SSESpecification={"Enabled": True},
        Tags=tag_list(tags(cloud.settings.project, spec.table_name)),
    )
    dynamodb.get_waiter("table_exists").wait(
        TableName=spec.table_name, WaiterConfig={"Delay": 2, "MaxAttempts": 60}
    )
    _enable_pitr(state, host, spec.table_name)
    if spec.ttl_attribute is not None:
        _enable_ttl(state, host, spec.table_name, spec.ttl_attribute)


def _update(state: State, host: Host, table_name: str, change: dict[str, Any]) -> None:
    cloud_of(host).client("dynamodb").update_table(TableName=table_name, **change)


def _enable_pitr(state: State, host: Host, table_name: str) -> None:
    cloud_of(host).client("dynamodb").update_continuous_backups(
        TableName=table_name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )


def _enable_ttl(state: State, host: Host, table_name: str, attribute: str) -> None:
    cloud_of(host).client("dynamodb").update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
    )


def _delete(state: State, host: Host, table_name: str) -> None:
    dynamodb = cloud_of(host).client("dynamodb")
    dynamodb.delete_table(TableName=table_name)
    dynamodb.get_waiter("table_not_exists").wait(
        TableName=table_name, WaiterConfig={"Delay": 2, "MaxAttempts": 60}
    )


@operation()
def data_tables(present: bool = True) -> Generator[FunctionCommand, None, None]:
    """The carts table (keyed by `user_id`), the orders table (keyed by `order_id`) and the checkouts
    table (keyed by `checkout_key`, its items expiring at `expires_at`)."""
    settings = cloud_of(host).settings
    for spec in (
        TableSpec(settings.carts_table, "user_id"),
        TableSpec(settings.orders_table, "order_id"),
        TableSpec(settings.checkouts_table, CHECKOUTS_KEY, ttl_attribute=CHECKOUTS_TTL_ATTRIBUTE),
    ):
        yield from table_commands(spec, present)

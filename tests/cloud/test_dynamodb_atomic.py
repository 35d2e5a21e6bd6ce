"""DynamoDB's conditional writes are atomic per item in the AWS emulator, as in DynamoDB: concurrent
increments of one item are all counted, and of concurrent creates of one item exactly one succeeds."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sim import aws
from sim.supervisor.process import free_port
from tests.support.moto import start_moto

WRITERS = 16
WRITES_EACH = 25


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    port = free_port()
    process = start_moto(tmp_path_factory.mktemp("emulator"), port=port)
    try:
        dynamodb = boto3.resource(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name=aws.REGION,
            aws_access_key_id=aws.CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=aws.CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(max_pool_connections=WRITERS, retries={"total_max_attempts": 1}),
        )
        yield dynamodb.create_table(
            TableName="counters",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    finally:
        process.stop()


def test_concurrent_increments_of_one_item_are_all_counted(table: Any) -> None:
    def increment(_: int) -> None:
        for _ in range(WRITES_EACH):
            table.update_item(
                Key={"id": "orders"},
                UpdateExpression="SET n = if_not_exists(n, :zero) + :one",
                ExpressionAttributeValues={":zero": 0, ":one": 1},
            )

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(increment, range(WRITERS)))
    assert table.get_item(Key={"id": "orders"})["Item"]["n"] == WRITERS * WRITES_EACH


def test_of_concurrent_creates_of_one_item_exactly_one_succeeds(table: Any) -> None:
    def create(writer: int, key: str) -> str:
        try:
            table.put_item(Item={"id": key, "writer": writer}, ConditionExpression="attribute_not_exists(id)")
        except ClientError as err:
            return str(err.response["Error"]["Code"])
        return "created"

    for round_ in range(WRITES_EACH):
        key = f"cart-{round_}"
        with ThreadPoolExecutor(WRITERS) as pool:
            created = list(pool.map(create, range(WRITERS), [key] * WRITERS))
        assert sorted(set(created)) == ["ConditionalCheckFailedException", "created"]
        assert created.count("created") == 1, f"{key}: {created.count('created')} creates succeeded"

"""The async AWS client session. Endpoint, region and credentials come from the standard `AWS_*`
variables (`AWS_ENDPOINT_URL` points at the emulator in the local cloud only)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError
from opentelemetry import trace
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.service_resource import DynamoDBServiceResource

CLIENT_CONFIG = AioConfig(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})

_session = aioboto3.Session()
tracer = trace.get_tracer(__name__)


def dynamodb_resource() -> AbstractAsyncContextManager[DynamoDBServiceResource]:
    """A DynamoDB service resource; enter it (`await app.enter(...)`) for the life of the service."""
    return _session.resource("dynamodb", config=CLIENT_CONFIG)


def dynamodb_span(operation: str, table: str) -> AbstractContextManager[trace.Span]:
    """A client span for one DynamoDB call: aioboto3 has no OpenTelemetry instrumentation of its own."""
    return tracer.start_as_current_span(
        f"DynamoDB.{operation}",
        kind=SpanKind.CLIENT,
        attributes={
            "rpc.system": "aws-api",
            "rpc.service": "DynamoDB",
            "rpc.method": operation,
            "aws.dynamodb.table_names": [table],
        },
    )


def error_code(err: ClientError) -> str:
    """The AWS error code of a failed call, e.g. `ConditionalCheckFailedException`."""
    return str(err.response.get("Error", {}).get("Code", "unknown"))

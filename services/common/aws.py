"""The async AWS client session. Endpoint, region and credentials come from the standard `AWS_*`
variables (`AWS_ENDPOINT_URL` points at the emulator in the local cloud only).

Every call is retried by the SDK's standard retry mode (throttling, 5xx and connection errors only,
exponential backoff with jitter, at most `MAX_ATTEMPTS` attempts) and each attempt is bounded by the
connect and read timeouts, so a request that meets a throttled or unreachable DynamoDB is answered within
seconds: `dynamodb_call` turns what still fails into `DynamoDBUnavailable`, a 503 naming the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, ClassVar

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as EndpointUnreachable
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from services.common.unavailable import Unavailable

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.service_resource import DynamoDBServiceResource, Table

#: attempts at one call, the first included (botocore's `max_attempts` would count the retries only)
MAX_ATTEMPTS = 3
CLIENT_CONFIG = AioConfig(
    connect_timeout=2, read_timeout=5, retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"}
)
#: DynamoDB's answers to more requests than the table or account takes
THROTTLING_ERRORS = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
#: seconds a caller is asked to wait before sending a request again
THROTTLED_RETRY_AFTER = 1
UNREACHABLE_RETRY_AFTER = 5

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


class DynamoDBUnavailable(Unavailable):
    """A DynamoDB call failed even after the SDK's retries: throttled, unreachable or refused."""


@contextmanager
def dynamodb_call(operation: str, table: str, store: str) -> Iterator[None]:
    """One DynamoDB call in its client span; an AWS failure not handled inside becomes
    `DynamoDBUnavailable`, whose message names `store` (what the table is to the service's users, e.g.
    "cart store") and the table."""
    with dynamodb_span(operation, table):
        try:
            yield
        except ClientError as err:
            code = error_code(err)
            status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in THROTTLING_ERRORS:
                reason, retry_after = f"DynamoDB is throttling requests ({code})", THROTTLED_RETRY_AFTER
            elif status >= 500:
                reason, retry_after = f"DynamoDB failed {operation} ({code})", THROTTLED_RETRY_AFTER
            else:
                reason, retry_after = f"DynamoDB refused {operation} ({code})", UNREACHABLE_RETRY_AFTER
            raise DynamoDBUnavailable(_message(store, table, reason), retry_after) from err
        except EndpointUnreachable as err:
            reason = f"DynamoDB cannot be reached ({type(err).__name__})"
            raise DynamoDBUnavailable(_message(store, table, reason), UNREACHABLE_RETRY_AFTER) from err
        except HTTPClientError as err:
            reason = f"DynamoDB did not answer {operation} ({type(err).__name__})"
            raise DynamoDBUnavailable(_message(store, table, reason), UNREACHABLE_RETRY_AFTER) from err
        except BotoCoreError as err:
            reason = f"DynamoDB {operation} could not be sent ({type(err).__name__}: {err})"
            raise DynamoDBUnavailable(_message(store, table, reason), UNREACHABLE_RETRY_AFTER) from err


def _message(store: str, table: str, reason: str) -> str:
    return f"{store} unavailable: {reason} on table {table}; try again"


class ServiceTable:
    """A DynamoDB table a service keeps its state in: `use` it with an open resource before the first
    call; each call goes through `call`, so that what DynamoDB fails becomes a 503 naming `store`, what the
    table is to the service's users ("cart store")."""

    store: ClassVar[str]

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self._table: Table | None = None

    async def use(self, dynamodb: DynamoDBServiceResource) -> None:
        self._table = await dynamodb.Table(self.table_name)

    @property
    def table(self) -> Table:
        if self._table is None:
            raise RuntimeError(f"the {self.store} is not open")
        return self._table

    async def check(self) -> None:
        """Raise unless the table exists and answers."""
        with self.call("DescribeTable"):
            await self.table.meta.client.describe_table(TableName=self.table_name)

    def call(self, operation: str) -> AbstractContextManager[None]:
        """One call on the table, in its client span (`dynamodb_call`)."""
        return dynamodb_call(operation, self.table_name, self.store)

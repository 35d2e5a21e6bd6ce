"""The async AWS client session. Endpoint, region and credentials come from the standard `AWS_*`
variables (`AWS_ENDPOINT_URL` points at the emulator in the local cloud only)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import aioboto3
from aiobotocore.config import AioConfig

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.service_resource import DynamoDBServiceResource

CLIENT_CONFIG = AioConfig(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})

_session = aioboto3.Session()


def dynamodb_resource() -> AbstractAsyncContextManager[DynamoDBServiceResource]:
    """A DynamoDB service resource; enter it (`await app.enter(...)`) for the life of the service."""
    return _session.resource("dynamodb", config=CLIENT_CONFIG)

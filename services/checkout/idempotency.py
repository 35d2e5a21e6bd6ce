"""The checkouts table: each checkout attempt remembered by its `Idempotency-Key`, so that a retried
checkout places its order once and answers as the first attempt did.

One item per key (`checkout_key`, the user id and the caller's key), `{fingerprint, state, token,
lease_until, expires_at, status, body}`:
- an attempt claims its key with a conditional put (`state` "running", a random `token`, a lease);
- when it ends it stores its answer (`state` "done", `status`, `body`), if its claim still stands;
- an attempt that failed on a peer before publishing releases its key, so a retry runs again (a charge
  it may have taken is keyed by the same order id, `order_id_for`, so payment does not take it twice);
- when DynamoDB fails (throttled or unreachable even after the SDK's retries) the call raises
  `DynamoDBUnavailable`, a 503: a claim that fails charges nothing; an answer that cannot be stored is
  stored again in the background until the claim's lease ends (`finish_later`), and a release that fails
  leaves the claim to run out its lease;
- the answers kept are final ones: the order, a refusal (400) and an order not published, whose charge was
  voided (503; a new attempt needs a new key);
- a retry of a finished attempt gets the stored answer; a retry of a running one waits for it (polling,
  up to `wait_seconds`) and is told it is still in progress after that; a claim whose lease ran out (its
  attempt died) is taken over; the same key for a different body (`fingerprint`) is refused;
- every item carries `expires_at` (epoch seconds), the table's TTL attribute: a key is remembered for
  `ttl_seconds`, and an item past it counts as gone even before DynamoDB deletes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, uuid4, uuid5

from botocore.exceptions import ClientError

from services.common.aws import DynamoDBUnavailable, ServiceTable, error_code

log = logging.getLogger(__name__)

KEY_ATTRIBUTE = "checkout_key"
TTL_ATTRIBUTE = "expires_at"
CONDITION_FAILED = "ConditionalCheckFailedException"
POLL_SECONDS = 0.1
#: how often `finish_later` tries again to store an answer
FINISH_RETRY_SECONDS = 1.0
#: the namespace of the order ids derived from checkout keys
ORDER_ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://shopstack.example/checkout-keys")

RUNNING, DONE = "running", "done"


class KeyReused(Exception):
    """The key was used for a checkout with a different body."""


class StillRunning(Exception):
    """The attempt holding the key did not finish within the wait."""


@dataclass(frozen=True)
class Outcome:
    """What a checkout attempt answered."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """This attempt holds `key`."""

    key: str
    token: str


def checkout_key(user_id: str, idempotency_key: str) -> str:
    """The table's key: a caller's key names an attempt of that user only."""
    return f"{user_id}/{idempotency_key}"


def order_id_for(key: str) -> str:
    """The order id of the checkout `key`: every attempt of a checkout places (and charges) the same order."""
    return str(uuid5(ORDER_ID_NAMESPACE, key))


def fingerprint(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


class CheckoutLog(ServiceTable):
    """The checkouts table; `use` it with an open DynamoDB resource before the first call."""

    store = "checkouts table"

    def __init__(
        self, table_name: str, *, ttl_seconds: float, lease_seconds: float, wait_seconds: float
    ) -> None:
        super().__init__(table_name)
        self.ttl_seconds = ttl_seconds
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds

    async def claim(self, key: str, body_fingerprint: str) -> Claim | Outcome:
        """Hold `key` for this attempt, or the answer of the attempt that held it; `KeyReused` for another
        body, `StillRunning` when the attempt holding it runs on past the wait."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            claim = Claim(key, str(uuid4()))
            if await self._put_claim(claim, body_fingerprint):
                return claim
            current = await self._get(key)
            if current is None:
                continue  # released or expired since: claim it again
            if current.get("fingerprint") != body_fingerprint:
                raise KeyReused(key)
            if current.get("state") == DONE:
                return Outcome(int(current["status"]), json.loads(str(current["body"])))
            if time.monotonic() >= deadline:
                raise StillRunning(key)
            await asyncio.sleep(POLL_SECONDS)

    async def finish(self, claim: Claim, outcome: Outcome) -> None:
        """Store the answer of the attempt holding `claim`, for its retries."""
        with self.call("UpdateItem"):
            try:
                await self.table.update_item(
                    Key={KEY_ATTRIBUTE: claim.key},
                    UpdateExpression=(
                        "SET #state = :done, #status = :status, #body = :body, #expires = :expires"
                    ),
                    ConditionExpression="#token = :token",
                    ExpressionAttributeNames={
                        "#state": "state",
                        "#status": "status",
                        "#body": "body",
                        "#expires": TTL_ATTRIBUTE,
                        "#token": "token",
                    },
                    ExpressionAttributeValues={
                        ":done": DONE,
                        ":status": outcome.status,
                        ":body": json.dumps(outcome.body, separators=(",", ":")),
                        ":expires": int(time.time() + self.ttl_seconds),
                        ":token": claim.token,
                    },
                )
            except ClientError as err:
                if error_code(err) != CONDITION_FAILED:
                    raise
                log.warning("checkout %s was taken over by a retry; its answer is the retry's", claim.key)

    async def finish_later(self, claim: Claim, outcome: Outcome) -> None:
        """`finish`, tried every `FINISH_RETRY_SECONDS` while DynamoDB fails, until the claim's lease ends
        (after that a retry may take the key over, and the answer is the retry's)."""
        deadline = time.monotonic() + self.lease_seconds
        while True:
            await asyncio.sleep(FINISH_RETRY_SECONDS)
            try:
                await self.finish(claim, outcome)
            except DynamoDBUnavailable as err:
                if time.monotonic() < deadline:
                    continue
                log.error("the answer of checkout %s was never stored: %s", claim.key, err)
            return

    async def release(self, claim: Claim) -> None:
        """Forget the attempt holding `claim` (it changed nothing), so that a retry runs again; when DynamoDB
        fails, the claim stays until its lease ends (a retry waits for it, then takes it over)."""
        try:
            with self.call("DeleteItem"):
                try:
                    await self.table.delete_item(
                        Key={KEY_ATTRIBUTE: claim.key},
                        ConditionExpression="#token = :token",
                        ExpressionAttributeNames={"#token": "token"},
                        ExpressionAttributeValues={":token": claim.token},
                    )
                except ClientError as err:
                    if error_code(err) != CONDITION_FAILED:
                        raise
        except DynamoDBUnavailable as err:
            log.warning("checkout %s keeps its key until its lease ends: %s", claim.key, err)

    async def _put_claim(self, claim: Claim, body_fingerprint: str) -> bool:
        """Claim the key: True unless another attempt holds it (or its answer is stored)."""
        now = time.time()
        with self.call("PutItem"):
            try:
                await self.table.put_item(
                    Item={
                        KEY_ATTRIBUTE: claim.key,
                        "fingerprint": body_fingerprint,
                        "state": RUNNING,
                        "token": claim.token,
                        "lease_until": _number(now + self.lease_seconds),
                        TTL_ATTRIBUTE: int(now + self.ttl_seconds),
                    },
                    ConditionExpression=(
                        "attribute_not_exists(#key) OR #expires < :now"
                        " OR (#state = :running AND lease_until < :now AND fingerprint = :fingerprint)"
                    ),
                    ExpressionAttributeNames={
                        "#key": KEY_ATTRIBUTE,
                        "#expires": TTL_ATTRIBUTE,
                        "#state": "state",
                    },
                    ExpressionAttributeValues={
                        ":now": _number(now),
                        ":running": RUNNING,
                        ":fingerprint": body_fingerprint,
                    },
                )
            except ClientError as err:
                if error_code(err) != CONDITION_FAILED:
                    raise
                return False
        return True

    async def _get(self, key: str) -> dict[str, Any] | None:
        with self.call("GetItem"):
            response = await self.table.get_item(Key={KEY_ATTRIBUTE: key}, ConsistentRead=True)
        item = response.get("Item")
        return dict(item) if item is not None else None


def _number(seconds: float) -> Decimal:
    """Epoch seconds to the millisecond, as DynamoDB numbers are written."""
    return Decimal(str(round(seconds, 3)))

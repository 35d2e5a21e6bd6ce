"""Kafka for the services: a publisher (`acks=all`, retries) and a consuming worker that commits a fetch
only after processing it, continues the producer's trace, exports its lag and stops gracefully.

Tansu, the local broker, rejects idempotent and transactional producers from aiokafka, so delivery is
at-least-once and every consumer must be idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.common.orders import UnreadableEvent

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
meter = metrics.get_meter(__name__)

Handler = Callable[[ConsumerRecord], Awaitable[None]]

FETCH_MAX_WAIT_MS = 50
#: records handled (concurrently, in order per key) and committed together
MAX_BATCH_RECORDS = 100
RETRY_DELAY_SECONDS = 1.0
CONNECT_RETRY_SECONDS = 2.0
PUBLISH_TIMEOUT_SECONDS = 5.0
#: partitions of a topic a worker creates: enough for three consumers of a group to share the work
TOPIC_PARTITIONS = 3

Client = TypeVar("Client", AIOKafkaProducer, AIOKafkaConsumer)


class KafkaUnavailable(KafkaError):  # type: ignore[misc]
    """The broker cannot take or give messages now: not connected yet, or a publish timed out."""


async def _try_start(make: Callable[[], Client], what: str) -> Client | None:
    """Start a client made by `make`; None (and the client closed) when the broker does not answer."""
    client = make()
    try:
        await client.start()
    except KafkaError as err:
        log.warning("%s cannot reach Kafka: %s", what, err)
        await client.stop()
        return None
    return client


async def _connected(make: Callable[[], Client], what: str) -> Client:
    """Start a client, retrying with a fresh one until the broker answers.

    A service starts (and reports unready) while Kafka is down, rather than exiting.
    """
    while True:
        client = await _try_start(make, what)
        if client is not None:
            return client
        await asyncio.sleep(CONNECT_RETRY_SECONDS)


class Publisher:
    """Publishes to Kafka with `acks=all`; the aiokafka instrumentation adds `traceparent` headers."""

    def __init__(self, bootstrap_servers: str, client_id: str) -> None:
        self._settings = {"bootstrap_servers": bootstrap_servers, "client_id": client_id}
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[AIOKafkaProducer] | None = None

    def _make(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **self._settings,
            acks="all",
            enable_idempotence=False,
            request_timeout_ms=int(PUBLISH_TIMEOUT_SECONDS * 1000),
            retry_backoff_ms=200,
            linger_ms=0,
        )

    async def __aenter__(self) -> Publisher:
        """Connect now if the broker answers; otherwise keep trying in the background."""
        self._producer = await _try_start(self._make, "publisher")
        if self._producer is None:
            self._connecting = asyncio.create_task(_connected(self._make, "publisher"))
            self._connecting.add_done_callback(self._on_connected)
        return self

    def _on_connected(self, task: asyncio.Task[AIOKafkaProducer]) -> None:
        if not task.cancelled():
            self._producer = task.result()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()

    async def publish(
        self, topic: str, key: str, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        """Send one message and wait until every in-sync replica has it, for at most 5 s."""
        if self._producer is None:
            raise KafkaUnavailable("not connected to Kafka yet")
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                await self._producer.send_and_wait(topic, value, key=key.encode(), headers=list(headers))
        except TimeoutError:
            raise KafkaUnavailable(
                f"publish to {topic} timed out after {PUBLISH_TIMEOUT_SECONDS:.0f}s"
            ) from None

    async def ping(self) -> None:
        """Raise unless connected and the broker answers a metadata request."""
        if self._producer is None:
            raise KafkaUnavailable("not connected to Kafka yet")
        await self._producer.client.fetch_all_metadata()


async def ensure_topic(bootstrap_servers: str, topic: str, partitions: int) -> None:
    """Create `topic` unless it exists (one replica: the shop runs one broker).

    A consumer group is assigned no partitions of a topic that does not exist, and the broker's own
    auto-creation on a first publish would make a topic of one partition; so the workers create theirs.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    for _, code, *_ in response.topic_errors:
        if code not in (0, TopicAlreadyExistsError.errno):
            log.warning("creating topic %s failed with Kafka error %d", topic, code)


class Worker:
    """Consumes `topic` in consumer group `group_id` a fetch at a time.

    The records of one fetch are handled concurrently, except that records of one key are handled one
    after another in their order (an order's redeliveries never race each other); then each partition is
    committed once, up to its first record that must be tried again. A handler that raises is retried (the
    worker seeks back to it after a pause) until it succeeds; an `UnreadableEvent` is logged, counted and
    skipped. Records after a failed one may be handled again: handlers must be idempotent.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        group_id: str,
        handler: Handler,
        partitions: int = TOPIC_PARTITIONS,
    ) -> None:
        self.topic = topic
        self.partitions = partitions
        self.group_id = group_id
        self._handler = handler
        self._settings = {"bootstrap_servers": bootstrap_servers, "group_id": group_id}
        self._consumer: AIOKafkaConsumer | None = None
        self._committed: dict[TopicPartition, int] = {}
        self._lag = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.processed = meter.create_counter(
            "messaging.process.messages", description="Messages processed and committed"
        )
        self.rejected = meter.create_counter(
            "messaging.process.rejected", description="Unreadable messages skipped"
        )
        meter.create_observable_gauge(
            "messaging.kafka.consumer.lag",
            callbacks=[self._observe_lag],
            description="Messages in the topic not yet processed by this consumer group",
        )

    def _make(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **self._settings,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )

    async def __aenter__(self) -> Worker:
        """Join the group now if the broker answers; otherwise keep trying in the background."""
        self._consumer = await _try_start(self._make, f"consumer group {self.group_id}")
        self._task = asyncio.create_task(self._supervise(), name=f"kafka-worker-{self.group_id}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Finish the fetch in hand, commit it, and leave the group."""
        self._stopping.set()
        if self._task is not None:
            if self._consumer is None:
                self._task.cancel()  # still waiting for Kafka: nothing in hand to finish
            await asyncio.wait({self._task}, timeout=30)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    def lag(self) -> int:
        """Messages behind the end of the assigned partitions, as of the last fetch."""
        return self._lag

    def connected(self) -> bool:
        """Whether the worker is running with a consumer the broker answered: what its readiness means.

        Not whether it owns partitions yet: joining the group takes seconds (and a member beyond the
        partitions' count owns none until another leaves), and a pod that can consume can serve; the
        group's lag is a metric (`messaging.kafka.consumer.lag`), not a readiness gate."""
        return self._task is not None and not self._task.done() and self._consumer is not None

    def assigned(self) -> bool:
        """Whether the worker is running and owns partitions of its topic now."""
        return self.connected() and self._consumer is not None and bool(self._consumer.assignment())

    async def _supervise(self) -> None:
        """Connect, then consume; an unexpected failure is logged and consuming resumes after a pause."""
        if self._consumer is None:
            self._consumer = await _connected(self._make, f"consumer group {self.group_id}")
        consumer = self._consumer
        try:
            await ensure_topic(self._settings["bootstrap_servers"], self.topic, self.partitions)
        except KafkaError as err:
            log.warning("cannot make sure topic %s exists (subscribing anyway): %s", self.topic, err)
        consumer.subscribe([self.topic], listener=_ForgetRevoked(self._committed))
        while not self._stopping.is_set():
            try:
                await self._run(consumer)
            except Exception:
                log.exception(
                    "consumer group %s failed; resuming in %.0fs", self.group_id, RETRY_DELAY_SECONDS
                )
                await asyncio.sleep(RETRY_DELAY_SECONDS)

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            for tp in consumer.assignment() - self._committed.keys():
                self._committed[tp] = await consumer.committed(tp) or 0
            fetched = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH_RECORDS)
            self._lag = self._measure_lag(consumer)
            # a rebalance may have taken a partition away since the fetch: its new owner resumes it
            owned = {tp: records for tp, records in fetched.items() if tp in consumer.assignment()}
            if not owned:
                continue
            retry = await self._handle_all(owned)
            ends = {tp: retry.get(tp, records[-1].offset + 1) for tp, records in owned.items()}
            if not await self._commit(ends):
                retry = {tp: self._committed.get(tp, records[0].offset) for tp, records in owned.items()}
            for tp, offset in retry.items():
                self._rewind(tp, offset)
            self._lag = self._measure_lag(consumer)
            if retry:
                await asyncio.sleep(RETRY_DELAY_SECONDS)

    async def _handle_all(
        self, fetched: dict[TopicPartition, list[ConsumerRecord]]
    ) -> dict[TopicPartition, int]:
        """Handle the records of one fetch; the offset of each partition's first record to try again."""
        by_key: dict[tuple[TopicPartition, bytes | None], list[ConsumerRecord]] = {}
        for tp, records in fetched.items():
            for record in records:
                by_key.setdefault((tp, record.key), []).append(record)
        failures = await asyncio.gather(*(self._handle_in_order(records) for records in by_key.values()))
        retry: dict[TopicPartition, int] = {}
        for (tp, _), failed in zip(by_key, failures, strict=True):
            if failed is not None:
                retry[tp] = min(failed.offset, retry.get(tp, failed.offset))
        return retry

    async def _handle_in_order(self, records: Sequence[ConsumerRecord]) -> ConsumerRecord | None:
        """Handle records of one key in order; the first that must be tried again, or None."""
        for record in records:
            if not await self._process(record):
                return record
        return None

    def _measure_lag(self, consumer: AIOKafkaConsumer) -> int:
        total = 0
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                total += max(0, highwater - self._committed.get(tp, 0))
        return total

    def _rewind(self, tp: TopicPartition, offset: int) -> None:
        """Fetch `tp` again from `offset`, unless a rebalance took it away (seeking it would raise)."""
        if self._consumer is not None and tp in self._consumer.assignment():
            self._consumer.seek(tp, offset)

    async def _process(self, record: ConsumerRecord) -> bool:
        """Handle one record; False means it must be tried again."""
        carrier = {
            key: value.decode(errors="replace") for key, value in record.headers or () if value is not None
        }
        with tracer.start_as_current_span(
            f"process {record.topic}",
            context=propagate.extract(carrier),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation": "process",
                "messaging.destination.name": record.topic,
                "messaging.consumer.group.name": self.group_id,
                "messaging.kafka.message.offset": record.offset,
                "messaging.destination.partition.id": str(record.partition),
            },
        ) as span:
            try:
                await self._handler(record)
            except UnreadableEvent as err:
                log.error("skipping unreadable message at %s:%s: %s", record.partition, record.offset, err)
                span.set_status(Status(StatusCode.ERROR, str(err)))
                self.rejected.add(1, {"topic": record.topic})
            except Exception as err:
                log.exception("processing %s:%s failed; will retry", record.partition, record.offset)
                span.record_exception(err)
                span.set_status(Status(StatusCode.ERROR, str(err)))
                return False
            else:
                self.processed.add(1, {"topic": record.topic})
            return True

    async def _commit(self, ends: dict[TopicPartition, int]) -> bool:
        """Commit each partition up to its offset in `ends`; False when the broker refused."""
        assert self._consumer is not None
        ends = {tp: offset for tp, offset in ends.items() if offset > self._committed.get(tp, 0)}
        if not ends:
            return True
        try:
            await self._consumer.commit(ends)
        except KafkaError as err:
            log.warning("commit of %s failed; its messages will be processed again: %s", ends, err)
            return False
        self._committed.update(ends)
        return True

    def _observe_lag(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(self.lag(), {"topic": self.topic, "group": self.group_id})]


class _ForgetRevoked(ConsumerRebalanceListener):  # type: ignore[misc]
    """Drops the committed offsets of partitions this worker no longer owns."""

    def __init__(self, committed: dict[TopicPartition, int]) -> None:
        self._committed = committed

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self._committed.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Nothing to do: offsets of new partitions are read before the next fetch."""

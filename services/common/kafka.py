"""Kafka for the services: a publisher (`acks=all`, retries) and a consuming worker that commits only
after processing, continues the producer's trace, exports its lag and stops gracefully.

Tansu, the local broker, rejects idempotent and transactional producers from aiokafka, so delivery is
at-least-once and every consumer must be idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import KafkaError
from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.common.orders import UnreadableEvent

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
meter = metrics.get_meter(__name__)

Handler = Callable[[ConsumerRecord], Awaitable[None]]

FETCH_MAX_WAIT_MS = 50
RETRY_DELAY_SECONDS = 1.0


class Publisher:
    """Publishes to Kafka with `acks=all`; the aiokafka instrumentation adds `traceparent` headers."""

    def __init__(self, bootstrap_servers: str, client_id: str) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=False,
            request_timeout_ms=10_000,
            retry_backoff_ms=200,
            linger_ms=0,
        )

    async def __aenter__(self) -> Publisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._producer.stop()

    async def publish(
        self, topic: str, key: str, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        """Send one message and wait until every in-sync replica has it."""
        await self._producer.send_and_wait(topic, value, key=key.encode(), headers=list(headers))

    async def ping(self) -> None:
        """Raise unless the broker answers a metadata request."""
        await self._producer.client.fetch_all_metadata()


class Worker:
    """Consumes `topic` in consumer group `group_id`, one message at a time, in order.

    A message is committed only after `handler` returns. A handler that raises is retried (the worker
    seeks back) until it succeeds; an `UnreadableEvent` is logged, counted and skipped.
    """

    def __init__(self, bootstrap_servers: str, topic: str, group_id: str, handler: Handler) -> None:
        self.topic = topic
        self.group_id = group_id
        self._handler = handler
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        self._committed: dict[TopicPartition, int] = {}
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

    async def __aenter__(self) -> Worker:
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=_ForgetRevoked(self._committed))
        self._task = asyncio.create_task(self._run(), name=f"kafka-worker-{self.group_id}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Finish the message in hand, commit it, and leave the group."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=30)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    def lag(self) -> int:
        """Messages behind the end of the assigned partitions, as of the last fetch."""
        total = 0
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                total += max(0, highwater - self._committed.get(tp, 0))
        return total

    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    async def _run(self) -> None:
        while not self._stopping.is_set():
            for tp in self._consumer.assignment() - self._committed.keys():
                self._committed[tp] = await self._consumer.committed(tp) or 0
            batches = await self._consumer.getmany(timeout_ms=200, max_records=50)
            for tp, records in batches.items():
                for record in records:
                    if self._stopping.is_set():
                        self._consumer.seek(tp, record.offset)
                        return
                    if not await self._process(record):
                        self._consumer.seek(tp, record.offset)
                        await asyncio.sleep(RETRY_DELAY_SECONDS)
                        break

    async def _process(self, record: ConsumerRecord) -> bool:
        """Handle and commit one record; False means it must be tried again."""
        carrier = {key: value.decode(errors="replace") for key, value in record.headers or ()}
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
            return await self._commit(record)

    async def _commit(self, record: ConsumerRecord) -> bool:
        tp = TopicPartition(record.topic, record.partition)
        try:
            await self._consumer.commit({tp: record.offset + 1})
        except KafkaError:
            log.warning("commit of %s:%s failed; the message will be processed again", tp, record.offset)
            return False
        self._committed[tp] = record.offset + 1
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

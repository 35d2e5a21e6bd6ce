"""The Kafka `Worker` against the real Tansu broker: it continues the producer's trace, survives a header
with no value, keeps consuming through a rebalance that takes partitions away mid-batch, creates its
topic when it does not exist yet, and handles a fetch concurrently, in order per key, retrying a record
that failed and committing the fetch once it is all handled."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from opentelemetry import trace
from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.common.kafka import Publisher, Worker
from tests.support.kafka import create_topic

# A consumer group takes about 5 s to form on Tansu, and as long again to rebalance.
DEADLINE_SECONDS = 40
REBALANCE_SECONDS = 10
POLL_SECONDS = 0.05


async def new_topic(bootstrap: str, partitions: int = 1) -> str:
    topic = f"worker-test-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic, partitions)
    return topic


async def until(condition: Callable[[], object], what: str) -> None:
    """Poll `condition()` until it holds; fail naming `what` after `DEADLINE_SECONDS`."""
    for _ in range(int(DEADLINE_SECONDS / POLL_SECONDS)):
        if condition():
            return
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(f"not seen within {DEADLINE_SECONDS}s: {what}")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Finished spans of this process, with the aiokafka instrumentation on (as services have it)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = AIOKafkaInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        instrumentor.uninstrument()
        exporter.shutdown()


async def test_the_process_span_continues_the_producers_trace(
    kafka_bootstrap: str, spans: InMemorySpanExporter
) -> None:
    topic = await new_topic(kafka_bootstrap)
    handled: list[ConsumerRecord] = []

    async def handle(record: ConsumerRecord) -> None:
        handled.append(record)

    async with Publisher(kafka_bootstrap, "test") as publisher:
        await publisher.publish(topic, "k", b"v")
    async with Worker(kafka_bootstrap, topic, "trace-test", handle):
        await until(lambda: handled, "the message handled")

    finished = spans.get_finished_spans()
    [send] = [s for s in finished if s.kind is SpanKind.PRODUCER and s.name == f"{topic} send"]
    [process] = [s for s in finished if s.name == f"process {topic}"]
    assert send.context is not None
    assert process.context is not None
    assert process.parent is not None
    assert process.context.trace_id == send.context.trace_id
    assert process.parent.span_id == send.context.span_id
    assert process.attributes is not None
    assert process.attributes["messaging.consumer.group.name"] == "trace-test"


async def test_a_message_with_a_header_without_value_is_processed(kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"first", headers=[("no-value", None)])
        await producer.send_and_wait(topic, b"second")
    finally:
        await producer.stop()
    handled: list[bytes] = []

    async def handle(record: ConsumerRecord) -> None:
        handled.append(record.value)

    async with Worker(kafka_bootstrap, topic, "null-header-test", handle):
        await until(lambda: len(handled) == 2, "both messages handled")

    assert handled == [b"first", b"second"]


async def test_a_rebalance_mid_batch_does_not_stop_the_worker_losing_a_partition(
    kafka_bootstrap: str,
) -> None:
    topic = await new_topic(kafka_bootstrap, partitions=2)
    # Few enough for one fetch: the first worker's first batch holds messages of both partitions.
    messages = [str(n).encode() for n in range(20)]
    async with Publisher(kafka_bootstrap, "test") as publisher:
        for n, value in enumerate(messages):
            await publisher.publish(topic, str(n), value)
    handled: Counter[bytes] = Counter()
    in_first_batch = asyncio.Event()
    joined: list[Worker] = []

    async def handle(record: ConsumerRecord) -> None:
        """Hold the first worker in its first batch until the second has taken a partition from it."""
        in_first_batch.set()
        await until(lambda: joined and joined[0].assigned(), "the second worker given a partition")
        handled[record.value] += 1

    async with Worker(kafka_bootstrap, topic, "rebalance-test", handle):
        await asyncio.wait_for(in_first_batch.wait(), DEADLINE_SECONDS)
        async with Worker(kafka_bootstrap, topic, "rebalance-test", handle) as second:
            joined.append(second)
            await until(lambda: handled.keys() == set(messages), "every message handled")


async def test_a_worker_started_before_its_topic_exists_creates_it_and_gets_every_partition(
    kafka_bootstrap: str,
) -> None:
    topic = f"worker-test-{uuid.uuid4().hex[:8]}"
    handled: list[bytes] = []

    async def handle(record: ConsumerRecord) -> None:
        handled.append(record.value)

    async with Worker(kafka_bootstrap, topic, "create-test", handle, partitions=2) as worker:
        await until(worker.assigned, "partitions assigned")
        await until(lambda: len(worker._consumer.assignment()) == 2, "both partitions assigned")  # type: ignore[union-attr]
        async with Publisher(kafka_bootstrap, "test") as publisher:
            await publisher.publish(topic, "k", b"first order")
        await until(lambda: handled, "the message handled")
    assert handled == [b"first order"]


async def test_a_fetch_is_handled_concurrently_in_order_per_key_and_a_failure_is_retried(
    kafka_bootstrap: str,
) -> None:
    topic = await new_topic(kafka_bootstrap)
    keys = [f"order-{n % 5}" for n in range(40)]
    async with Publisher(kafka_bootstrap, "test") as publisher:
        for n, key in enumerate(keys):
            await publisher.publish(topic, key, str(n).encode())
    handled: list[tuple[str, int]] = []
    in_flight: list[int] = [0, 0]  # now, most at once
    failed_once: set[int] = set()

    async def handle(record: ConsumerRecord) -> None:
        n = int(record.value)
        in_flight[0] += 1
        in_flight[1] = max(in_flight)
        try:
            await asyncio.sleep(0.01)
            if n == 12 and n not in failed_once:
                failed_once.add(n)
                raise RuntimeError("the table is away for a moment")
            handled.append((record.key.decode(), n))
        finally:
            in_flight[0] -= 1

    async with Worker(kafka_bootstrap, topic, "batch-test", handle):
        await until(lambda: {n for _, n in handled} == set(range(40)), "every message handled")

    assert in_flight[1] > 1, "records of different keys were handled one at a time"
    for key in set(keys):
        firsts = list(dict.fromkeys(n for k, n in handled if k == key))
        assert firsts == sorted(firsts), f"{key}'s records were handled out of order: {firsts}"
    assert failed_once == {12}
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id="batch-test")
    await consumer.start()
    try:
        assert await consumer.committed(TopicPartition(topic, 0)) == 40
    finally:
        await consumer.stop()


async def test_a_worker_is_ready_once_connected_before_it_owns_a_partition(kafka_bootstrap: str) -> None:
    """Readiness is "can consume": at once when the broker answers, though joining the group takes
    seconds, and for a member beyond the partitions' count, which owns none until another leaves."""
    topic = await new_topic(kafka_bootstrap, partitions=1)

    async def handle(record: ConsumerRecord) -> None:
        pass

    async with Worker(kafka_bootstrap, topic, "ready-test", handle) as first:
        assert first.connected()
        assert not first.assigned()
        await until(first.assigned, "the partition assigned")
        async with Worker(kafka_bootstrap, topic, "ready-test", handle) as second:
            for _ in range(int(REBALANCE_SECONDS / POLL_SECONDS)):  # through the group's rebalance
                assert second.connected()
                assert [first.assigned(), second.assigned()].count(True) <= 1, "one partition, two owners"
                await asyncio.sleep(POLL_SECONDS)


async def test_a_worker_is_not_ready_while_the_broker_does_not_answer() -> None:
    async def handle(record: ConsumerRecord) -> None:
        pass

    async with Worker("127.0.0.1:1", "orders", "unreachable-test", handle) as worker:
        assert not worker.connected()

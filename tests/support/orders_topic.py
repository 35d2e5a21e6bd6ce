"""The `orders` topic as a test reads it: what was published after a mark."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from services.common.orders import ORDERS_TOPIC, OrderPlaced, decode

READ_TIMEOUT_SECONDS = 10.0

Offsets = dict[TopicPartition, int]


class OrdersTopic:
    """Reads what was published to `orders` after a mark, with a short-lived consumer outside any group."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def mark(self) -> Offsets:
        return asyncio.run(self._with_consumer(self._end_offsets))

    def since(self, mark: Offsets) -> list[ConsumerRecord]:
        async def read(consumer: AIOKafkaConsumer) -> list[ConsumerRecord]:
            end = await self._end_offsets(consumer)
            consumer.assign(list(end))
            for tp, offset in mark.items():
                consumer.seek(tp, offset)
            records: list[ConsumerRecord] = []
            deadline = time.monotonic() + READ_TIMEOUT_SECONDS
            while not await self._reached(consumer, end):
                assert time.monotonic() < deadline, "the orders topic could not be read to its end"
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
            return records

        return asyncio.run(self._with_consumer(read))

    def orders_of(self, user: str, mark: Offsets) -> list[tuple[ConsumerRecord, OrderPlaced]]:
        """The `OrderPlaced` messages for `user` published since `mark`."""
        decoded = [(record, decode(record.value)) for record in self.since(mark)]
        return [(record, order) for record, order in decoded if order.user_id == user]

    async def _with_consumer(self, use: Any) -> Any:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            return await use(consumer)
        finally:
            await consumer.stop()

    @staticmethod
    async def _reached(consumer: AIOKafkaConsumer, end: Offsets) -> bool:
        return all([await consumer.position(tp) >= offset for tp, offset in end.items()])

    @staticmethod
    async def _end_offsets(consumer: AIOKafkaConsumer) -> Offsets:
        await consumer.topics()
        partitions = [TopicPartition(ORDERS_TOPIC, p) for p in consumer.partitions_for_topic(ORDERS_TOPIC)]
        ends: Offsets = await consumer.end_offsets(partitions)
        return ends

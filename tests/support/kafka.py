"""A Tansu broker of a test's own (the Kafka images' stand-in, started bare), and topics on it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sim.standins.kafka import tansu_argv
from sim.supervisor.process import ManagedProcess, tcp_open


def start_tansu(
    log_dir: Path,
    port: int,
    host: str = "127.0.0.1",
    storage: str = "memory://tansu/",
    env: Mapping[str, str] | None = None,
) -> ManagedProcess:
    """Start a Tansu broker listening on `host:port`, storing in `storage` (memory:// or s3://)."""
    process = ManagedProcess(
        "tansu",
        tansu_argv(f"{host}:{port}", storage),
        log_dir / "tansu.log",
        env={**os.environ, **(env or {})},
    ).start()
    return process.wait_ready(lambda: tcp_open(host, port), timeout=30)


async def create_topic(bootstrap_servers: str, topic: str, partitions: int) -> None:
    """Create `topic` with `partitions` partitions (one replica: the stand-in is a single broker)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()

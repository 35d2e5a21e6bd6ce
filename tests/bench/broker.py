"""Benchmark: how long a publish to the Kafka stand-in takes while consumers poll it.

    .tox/local/bin/python -m tests.bench.broker [--backlog 1000] [--consumers 2] [--producers 4]
        [--rate 40] [--seconds 30]

Starts the AWS emulator and a Tansu broker storing in its S3, as the local cloud does, and the `orders`
topic with three partitions. `--backlog` orders are published first (the topic a long suite leaves:
Tansu keeps each batch as an S3 object and lists a partition's batches on every fetch). Then
`--consumers` consumer groups poll the topic as the order consumers do (50 ms fetch wait), while
`--producers` producers publish `--rate` orders a second between them, each one acknowledged (`acks=all`,
as checkout publishes); it prints each publish's latency (p50, p99, the slowest) and the emulator's CPU.

Checkout gives a publish 5 s (`services.common.kafka.PUBLISH_TIMEOUT_SECONDS`) before it voids the charge
and answers 503, so the slowest publish here is the margin the release proofs run on.

Bounded: every process on 127.0.0.1, a fixed number of orders and seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from services.common.orders import ORDERS_TOPIC, encode, schema_header
from sim import aws
from sim.standins.kafka import create_bucket
from sim.standins.table import KAFKA_BUCKET
from sim.supervisor.process import ManagedProcess, free_port
from tests.bench.consumers import patched_env, percentile
from tests.support.kafka import create_topic, start_tansu
from tests.support.moto import start_moto
from tests.support.order_events import order_event

HOST = "127.0.0.1"
PARTITIONS = 3
FETCH_MAX_WAIT_MS = 50
console = Console()


async def publish_one(producer: AIOKafkaProducer) -> float:
    """Publish one new order and wait for its acknowledgement; the seconds it took."""
    order = order_event()
    started = time.monotonic()
    await producer.send_and_wait(
        ORDERS_TOPIC, encode(order), key=order.order_id.encode(), headers=[schema_header()]
    )
    return time.monotonic() - started


async def backlog(bootstrap: str, count: int) -> None:
    """Publish `count` orders, twenty at a time, one batch each (as checkout's publishes are)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        for start in range(0, count, 20):
            await asyncio.gather(*(publish_one(producer) for _ in range(min(20, count - start))))
    finally:
        await producer.stop()


async def poll(bootstrap: str, group: str, stop: asyncio.Event) -> None:
    """Poll the topic as a consumer group until `stop`, from its end."""
    consumer = AIOKafkaConsumer(
        ORDERS_TOPIC,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            await consumer.getmany(timeout_ms=100)
    finally:
        await consumer.stop()


async def steady(bootstrap: str, args: argparse.Namespace) -> list[float]:
    """Each publish's seconds, `args.rate` a second for `args.seconds` over `args.producers` producers,
    with `args.consumers` groups polling."""
    producers = [
        AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0) for _ in range(args.producers)
    ]
    for producer in producers:
        await producer.start()
    stop = asyncio.Event()
    pollers = [asyncio.create_task(poll(bootstrap, f"bench-{n}", stop)) for n in range(args.consumers)]
    try:
        await asyncio.sleep(3)  # the groups joined and polling
        publishes = []
        started = time.monotonic()
        for n in range(int(args.rate * args.seconds)):
            publishes.append(asyncio.create_task(publish_one(producers[n % len(producers)])))
            await asyncio.sleep(max(0.0, started + (n + 1) / args.rate - time.monotonic()))
        return sorted(await asyncio.gather(*publishes))
    finally:
        stop.set()
        await asyncio.gather(*pollers)
        for producer in producers:
            await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=1000, help="orders on the topic first (%(default)s)")
    parser.add_argument("--consumers", type=int, default=2, help="consumer groups polling (%(default)s)")
    parser.add_argument("--producers", type=int, default=4, help="producers publishing (%(default)s)")
    parser.add_argument("--rate", type=float, default=40, help="orders a second (%(default)s)")
    parser.add_argument("--seconds", type=int, default=30, help="the steady phase (%(default)s)")
    args = parser.parse_args()
    if not (
        0 <= args.backlog <= 20_000
        and 0 <= args.consumers <= 8
        and 1 <= args.producers <= 16
        and 0 < args.rate <= 500
        and 0 < args.seconds <= 120
    ):
        parser.error(
            "bounded: --backlog 0..20000, --consumers 0..8, --producers 1..16, --rate up to 500, "
            "--seconds 1..120"
        )

    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        moto_port, broker_port = free_port(HOST), free_port(HOST)
        processes: list[ManagedProcess] = []
        try:
            emulator = start_moto(logs, HOST, moto_port)
            processes.append(emulator)
            env = aws.client_env(f"http://{HOST}:{moto_port}")
            with patched_env(env):
                create_bucket(env["AWS_ENDPOINT_URL"], KAFKA_BUCKET)
            broker_env = {"AWS_ENDPOINT": env["AWS_ENDPOINT_URL"], "AWS_ALLOW_HTTP": "true", **env}
            processes.append(start_tansu(logs, broker_port, HOST, f"s3://{KAFKA_BUCKET}/", broker_env))
            bootstrap = f"{HOST}:{broker_port}"
            asyncio.run(create_topic(bootstrap, ORDERS_TOPIC, PARTITIONS))
            with console.status(f"publishing a backlog of {args.backlog} orders"):
                asyncio.run(backlog(bootstrap, args.backlog))
            cpu = psutil.Process(emulator.pid)
            before = cpu.cpu_times()
            phase = f"{args.rate:.0f} orders/s for {args.seconds}s, {args.consumers} groups polling"
            with console.status(phase):
                started = time.monotonic()
                seconds = asyncio.run(steady(bootstrap, args))
                elapsed = time.monotonic() - started
            after = cpu.cpu_times()
        finally:
            for process in reversed(processes):
                process.stop()

    busy = (after.user + after.system - before.user - before.system) / elapsed
    table = Table(
        title=f"publishes to Tansu on the emulator's S3: a backlog of {args.backlog}, {args.consumers} "
        f"groups polling, {args.producers} producers"
    )
    for column in ("measure", "figure"):
        table.add_column(column)
    table.add_row(
        f"publish at {args.rate:.0f}/s ({len(seconds)} orders)",
        f"p50 {percentile(seconds, 0.5) * 1000:.0f} ms, p99 {percentile(seconds, 0.99) * 1000:.0f} ms, "
        f"slowest {seconds[-1] * 1000:.0f} ms",
    )
    table.add_row("the AWS emulator's CPU", f"{busy:.0%} of a core")
    console.print(table)


if __name__ == "__main__":
    main()

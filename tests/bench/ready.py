"""Benchmark: each service's time from process start to alive (`/healthz`) and to ready (`/readyz`).

    .tox/local/bin/python -m tests.bench.ready [--runs 3] [--service NAME ...]

Starts the AWS emulator with the shop's tables, a Tansu broker with the `orders` topic and the OTLP
receiver, then each service as `python -m services.<name>` with full telemetry, its peers running
already (as the component tests start them); each run of a service is a fresh process (`Shop.start`,
polling every 50 ms), timed from its start to its first `/healthz` 200 and to its first `/readyz` 200,
then stopped. Prints the median and the slowest run of each. Bounded: every process on 127.0.0.1, a
fixed number of runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sim import aws
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.support.kafka import create_topic, start_tansu
from tests.support.moto import start_moto
from tests.support.shop import HOST, MODULES, PEERS, FlagsFile, Shop, create_tables

ORDERS_PARTITIONS = 3
console = Console()


def timed_start(shop: Shop, name: str) -> tuple[float, float]:
    """Start `name` afresh; the seconds to its first `/healthz` and to its first `/readyz` 200."""
    started = time.monotonic()
    shop.start([name])
    alive = time.monotonic()
    try:
        shop.wait_ready([name])
    finally:
        ready = time.monotonic()
        shop.stop(name)
    return alive - started, ready - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="starts of each service (%(default)s)")
    parser.add_argument("--service", action="append", choices=sorted(MODULES), help="only these")
    args = parser.parse_args()
    if not 1 <= args.runs <= 10:
        parser.error("bounded: --runs 1..10")
    names = [name for name in MODULES if name in (args.service or MODULES)]

    timings: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "logs").mkdir()
        processes: list[ManagedProcess] = []
        shop: Shop | None = None
        try:
            moto_port, broker_port, receiver_port = (free_port(HOST) for _ in range(3))
            processes.append(start_moto(workdir / "logs", HOST, moto_port))
            aws_env = aws.client_env(f"http://{HOST}:{moto_port}")
            create_tables(aws_env)
            processes.append(start_tansu(workdir / "logs", broker_port, HOST))
            bootstrap = f"{HOST}:{broker_port}"
            asyncio.run(create_topic(bootstrap, "orders", ORDERS_PARTITIONS))
            receiver = ManagedProcess(
                "telemetry",
                [sys.executable, "-m", "sim.telemetry", "--host", HOST, "--port", str(receiver_port)],
                workdir / "logs" / "telemetry.log",
            ).start()
            processes.append(receiver)
            receiver.wait_ready(lambda: http_ok(f"http://{HOST}:{receiver_port}/healthz"))
            flags = FlagsFile(workdir / "flags.json")
            flags.write()
            shop = Shop(
                workdir,
                aws_env=aws_env,
                kafka_bootstrap=bootstrap,
                otlp_endpoint=f"http://{HOST}:{receiver_port}",
                flags=flags,
            )
            for name in names:
                peers = PEERS.get(name, ())
                if peers:
                    shop.ensure(*peers)
                with console.status(f"starting {name} {args.runs} times"):
                    timings[name] = [timed_start(shop, name) for _ in range(args.runs)]
        finally:
            if shop is not None:
                shop.stop_all()
            for process in reversed(processes):
                process.stop()

    table = Table(title=f"process start → alive and → ready, {args.runs} starts each (median, slowest)")
    for column in ("service", "alive (/healthz)", "ready (/readyz)"):
        table.add_column(column)
    for name, runs in timings.items():
        alive, ready = ([run[n] for run in runs] for n in (0, 1))
        table.add_row(
            name,
            f"{statistics.median(alive):.2f} s, {max(alive):.2f} s",
            f"{statistics.median(ready):.2f} s, {max(ready):.2f} s",
        )
    console.print(table)


if __name__ == "__main__":
    main()

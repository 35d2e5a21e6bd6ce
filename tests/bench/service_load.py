"""Benchmark: one service's resident memory and throughput, at rest and under load.

    .venv/bin/python -m tests.bench.service_load [--service product-catalog] [--path /products/OLJCESPC7Z]
        [--seconds 10] [--connections 50]

Starts the service as `python -m services.<name>` on loopback with full telemetry (exporting to the local
OTLP receiver), measures its RSS at rest, then drives it with `wrk` (Debian's package; a bounded async httpx
load is used where wrk is missing) for a fixed time and reports requests per second, latency and RSS under
load. Bounded: one target on 127.0.0.1, fixed duration.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.support.shop import MODULES

HOST = "127.0.0.1"
console = Console()


def rss_mib(pid: int) -> float:
    """Resident set size of `pid` from /proc, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wrk_load(url: str, seconds: int, connections: int) -> tuple[float, str]:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", output)
    return rps, p99.group(1) if p99 else "?"


async def httpx_load(url: str, seconds: int, connections: int) -> tuple[float, str]:
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=connections)) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                started = time.monotonic()
                await client.get(url)
                latencies.append(time.monotonic() - started)

        await asyncio.gather(*(worker() for _ in range(connections)))
    latencies.sort()
    return len(latencies) / seconds, f"{latencies[int(len(latencies) * 0.99)] * 1000:.1f}ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", default="product-catalog", choices=sorted(MODULES))
    parser.add_argument("--path", default="/products/OLJCESPC7Z")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        receiver_port, port = free_port(HOST), free_port(HOST)
        receiver = ManagedProcess(
            "telemetry",
            [sys.executable, "-m", "sim.telemetry", "--host", HOST, "--port", str(receiver_port)],
            logs / "telemetry.log",
        ).start()
        env = {
            "PATH": "/usr/bin:/bin",
            "BIND_HOST": HOST,
            "PORT": str(port),
            "OTEL_SERVICE_NAME": args.service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{HOST}:{receiver_port}",
            "LOG_LEVEL": "WARNING",
        }
        service = ManagedProcess(
            args.service, [sys.executable, "-m", MODULES[args.service]], logs / "svc.log", env
        )
        try:
            receiver.wait_ready(lambda: http_ok(f"http://{HOST}:{receiver_port}/healthz"))
            service.start().wait_ready(lambda: http_ok(f"http://{HOST}:{port}/healthz"))
            url = f"http://{HOST}:{port}{args.path}"
            httpx.get(url).raise_for_status()
            time.sleep(2)
            at_rest = rss_mib(service.pid)
            with console.status(f"loading {url} for {args.seconds}s with {args.connections} connections"):
                if shutil.which("wrk"):
                    tool, (rps, p99) = "wrk", wrk_load(url, args.seconds, args.connections)
                else:
                    tool, (rps, p99) = "httpx", asyncio.run(httpx_load(url, args.seconds, args.connections))
            under_load = rss_mib(service.pid)
        finally:
            service.stop()
            receiver.stop()

    table = Table(
        title=f"{args.service} {args.path} ({tool}, {args.connections} connections, {args.seconds}s)"
    )
    for column in ("RSS at rest", "RSS after load", "requests/s", "p99 latency"):
        table.add_column(column)
    table.add_row(f"{at_rest:.1f} MiB", f"{under_load:.1f} MiB", f"{rps:.0f}", p99)
    console.print(table)


if __name__ == "__main__":
    main()

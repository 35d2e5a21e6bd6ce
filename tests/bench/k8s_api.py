"""The Kubernetes API emulator's start-up time and API throughput, measured against a real server process.

    .venv/bin/python -m tests.bench.k8s_api [--runs N] [--objects N]

Prints: process start to the first `/readyz` 200 (ms, median of N starts); creates per second; a full
list of the objects (ms); and how fast a watch delivers the events of a burst of writes. Bounded: one
server on 127.0.0.1, a fixed number of requests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from sim.supervisor.process import ManagedProcess, free_port

HOST = "127.0.0.1"
POLL_SECONDS = 0.005
READY_TIMEOUT_SECONDS = 20.0
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def start(workdir: Path) -> tuple[ManagedProcess, str, float]:
    """Start a server; return it, its URL and the ms from process start to /readyz."""
    port = free_port(HOST)
    url = f"http://{HOST}:{port}"
    argv = [sys.executable, "-m", "sim.cluster", "--host", HOST, "--port", str(port)]
    started = time.perf_counter()
    process = ManagedProcess("k8s-api", argv, workdir / f"k8s-api-{port}.log").start()
    deadline = started + READY_TIMEOUT_SECONDS
    with httpx.Client(timeout=1.0) as client:
        while time.perf_counter() < deadline:
            try:
                if client.get(f"{url}/readyz").status_code == 200:
                    return process, url, (time.perf_counter() - started) * 1000
            except httpx.HTTPError:
                pass
            if not process.running():
                raise RuntimeError(f"server exited{process.log_tail()}")
            time.sleep(POLL_SECONDS)
    process.stop(grace=5)
    raise RuntimeError(f"not ready in {READY_TIMEOUT_SECONDS}s{process.log_tail()}")


def throughput(url: str, objects: int) -> str:
    with httpx.Client(base_url=url, timeout=30) as client:
        rv = client.get(CONFIGMAPS).json()["metadata"]["resourceVersion"]
        received: list[float] = []

        def watch() -> None:
            params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "60"}
            with (
                httpx.Client(base_url=url, timeout=70) as watcher,
                watcher.stream("GET", CONFIGMAPS, params=params) as stream,
            ):
                for line in stream.iter_lines():
                    if line and json.loads(line)["type"] == "ADDED":
                        received.append(time.perf_counter())
                        if len(received) >= objects:
                            return

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        time.sleep(0.3)
        began = time.perf_counter()
        for i in range(objects):
            body = {"metadata": {"name": f"bench-{i}", "labels": {"bench": "yes"}}, "data": {"k": "v" * 64}}
            client.post(CONFIGMAPS, json=body).raise_for_status()
        created = time.perf_counter() - began
        thread.join(timeout=60)
        t0 = time.perf_counter()
        listed = client.get(CONFIGMAPS, params={"labelSelector": "bench=yes"}).json()["items"]
        list_ms = (time.perf_counter() - t0) * 1000
    watched = len(received)
    lag = (received[-1] - began - created) * 1000 if received else float("nan")
    return (
        f"creates: {objects / created:.0f}/s ({objects} objects); list of {len(listed)}: {list_ms:.0f} ms; "
        f"watch delivered {watched}/{objects} events, last {lag:.0f} ms after the last create"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--objects", type=int, default=500)
    args = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(max(1, args.runs)):
            process, url, ms = start(Path(tmp))
            times.append(ms)
            try:
                if run == 0 and args.objects > 0:
                    report = throughput(url, args.objects)
            finally:
                process.stop(grace=5)
    print(
        f"k8s api start -> /readyz: median {statistics.median(times):.0f} ms, "
        f"min {min(times):.0f} ms, max {max(times):.0f} ms over {len(times)} runs"
    )
    if args.objects > 0:
        print(report)


if __name__ == "__main__":
    main()

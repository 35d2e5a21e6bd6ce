"""Benchmark: the local cloud's image store and kubelet with the payment image.

    .venv/bin/python -m tests.bench.kubelet [--layout build/oci/payment] [--pods 5]

Into a temporary store: load the layout (like `kind load`), resolve it cold (verify and unpack every
layer) and warm; then run one pod to its first /healthz answer and to Ready (readiness probe every
second), N pods side by side to Ready with their RSS, and a stop of them all (SIGTERM, graceful exit).
Without --layout, builds the payment image with the project's builder into the temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from containers.nodestore import ImageStore
from sim.kubelet import Kubelet, KubeletConfig, PodRuntime
from tests.support.images import build_images

PROBE = {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}


def payment_pod(reference: str, name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "bench", "uid": name},
        "spec": {"containers": [{"name": "app", "image": reference, "readinessProbe": PROBE}]},
    }


async def until_ready(runtime: PodRuntime) -> None:
    async for status in runtime.changes():
        if all(c["ready"] for c in status["containerStatuses"]):
            return


async def first_answer(url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=1, trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                await asyncio.sleep(0.02)
    raise TimeoutError(url)


async def pods(store: ImageStore, reference: str, root: Path, count: int) -> None:
    node = Kubelet(KubeletConfig(store, root / "logs"))
    try:
        began = time.monotonic()
        single = await node.run_pod(payment_pod(reference, "single"), "127.62.0.1")
        await first_answer("http://127.62.0.1:8080/healthz")
        answered = time.monotonic() - began
        await asyncio.wait_for(until_ready(single), 30)
        print(f"one pod: first /healthz answer {answered:.2f}s, Ready {time.monotonic() - began:.2f}s")
        await node.stop_all(grace=10)

        began = time.monotonic()
        runtimes = [
            await node.run_pod(payment_pod(reference, f"pod-{i}"), f"127.62.1.{i + 1}") for i in range(count)
        ]
        await asyncio.wait_for(asyncio.gather(*(until_ready(r) for r in runtimes)), 120)
        print(f"{count} pods side by side: all Ready in {time.monotonic() - began:.2f}s")
        await asyncio.sleep(1.5)
        rss = [
            int(c["usage"]["memory"].removesuffix("Ki")) / 1024
            for m in node.metrics()
            for c in m["containers"]
        ]
        print(f"RSS per pod: {min(rss):.1f}-{max(rss):.1f} MiB")
        began = time.monotonic()
        await node.stop_all(grace=10)
        print(f"stop all {count} (preStop none, SIGTERM, graceful exit): {time.monotonic() - began:.2f}s")
    finally:
        await node.stop_all(grace=2)


def build_payment(into: Path) -> Path:
    build_images(into, ["payment"])
    return into / "oci" / "payment"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", type=Path)
    parser.add_argument("--pods", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-kubelet-") as temporary:
        root = Path(temporary)
        layout = args.layout or build_payment(root / "build")
        store = ImageStore(root / "images")
        began = time.monotonic()
        loaded = store.load(layout)
        print(f"load {loaded.names[0]}: {time.monotonic() - began:.3f}s ({loaded.bytes / 1e6:.1f} MB)")
        reference = loaded.names[1]
        began = time.monotonic()
        store.resolve(reference)
        print(f"resolve cold (verify + unpack {loaded.layers} layers): {time.monotonic() - began:.2f}s")
        began = time.monotonic()
        store.resolve(reference)
        print(f"resolve warm: {(time.monotonic() - began) * 1000:.1f}ms")
        asyncio.run(pods(store, reference, root, args.pods))


if __name__ == "__main__":
    main()

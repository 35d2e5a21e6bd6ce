"""Pods to run and waits on their status, for the kubelet's tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sim.kubelet import PodRuntime


def pod(
    image: str, name: str = "payment-0", restart: str = "Always", grace: float = 10, **container: Any
) -> dict[str, Any]:
    """A Pod with one container `app` of `image` (extra container fields as keyword arguments)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}"},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": grace,
            "containers": [
                {
                    "name": "app",
                    "image": image,
                    "ports": [{"name": "http", "containerPort": 8080}],
                    **container,
                }
            ],
        },
    }


async def wait_until(
    runtime: PodRuntime, holds: Callable[[dict[str, Any]], bool], within: float = 30.0
) -> dict[str, Any]:
    """The first status of `runtime` for which `holds` is true; fails with the last status on timeout."""
    last: dict[str, Any] = {}

    async def watch() -> dict[str, Any]:
        nonlocal last
        async for status in runtime.changes():
            last = status
            if holds(status):
                return status
        raise AssertionError(f"pod stopped before the condition held: {json.dumps(last, indent=1)}")

    try:
        return await asyncio.wait_for(watch(), within)
    except TimeoutError:
        raise AssertionError(
            f"condition not met in {within}s; last status: {json.dumps(last, indent=1)}"
        ) from None


def container(status: dict[str, Any]) -> dict[str, Any]:
    return dict(status["containerStatuses"][0])


@dataclass(frozen=True)
class ProcessFacts:
    """What /proc says about a process: where it runs, what it runs, with what."""

    cwd: str
    argv: list[str]
    environ: dict[str, str]
    mapped_libraries: set[str]

    @classmethod
    def of(cls, pid: int) -> ProcessFacts:
        proc = Path("/proc") / str(pid)
        environ = dict(
            item.split("=", 1) for item in (proc / "environ").read_bytes().decode().split("\0") if "=" in item
        )
        mapped = {line.split()[-1] for line in (proc / "maps").read_text().splitlines() if ".so" in line}
        argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        return cls(os.readlink(proc / "cwd"), argv, environ, mapped)


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def real(path: str) -> str:
    return os.path.realpath(path)


async def get(url: str) -> int:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        return (await client.get(url)).status_code


async def log_contains(runtime: PodRuntime, text: str, within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    logged = ""
    while text not in logged:
        if loop.time() > deadline:
            raise AssertionError(f"{text!r} not logged in {within}s: {logged!r}")
        await asyncio.sleep(0.05)
        with contextlib.suppress(LookupError):
            logged = runtime.logs("app")

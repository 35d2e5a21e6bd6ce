"""A service as a process of its own, beside the session's shop: wired like the shop's (same moto, Tansu,
telemetry receiver, flags and peers) but with variables of the test's choosing, and stopped by the test."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.support.shop import HOST, MODULES, Shop


@dataclass(frozen=True)
class OwnProcess:
    process: ManagedProcess
    url: str
    #: its OTEL_SERVICE_NAME, unique to it: its telemetry is told apart from the shop's
    telemetry_name: str


@contextmanager
def own_process(shop: Shop, service: str, **env: str) -> Iterator[OwnProcess]:
    """Start `service` with the shop's variables and `env` on a port of its own; stop it at the end."""
    port = free_port(HOST)
    name = f"{service}-{uuid.uuid4().hex[:8]}"
    variables = {**shop.env, "PORT": str(port), "OTEL_SERVICE_NAME": name, **env}
    process = ManagedProcess(
        name, [sys.executable, "-m", MODULES[service]], shop.workdir / "logs" / f"{name}.log", env=variables
    ).start()
    url = f"http://{HOST}:{port}"
    try:
        process.wait_ready(lambda: http_ok(f"{url}/readyz"), timeout=60)
        yield OwnProcess(process, url, name)
    finally:
        process.stop()

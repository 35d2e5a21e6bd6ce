"""Stages whose cluster addresses the test runner cannot reach (AWS, kind): in-cluster Services through
`kubectl port-forward`, each forward opened once, on a free loopback port, and closed with the stage
(Jaeger's query API among them). Kafka's listeners are cluster-internal there: such a stage offers no
bootstrap, and the suite reads consumer lag from Prometheus."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from tests.integration.stages.base import Stage
from tests.k8s.conftest import kubectl_binary

FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")
OPEN_TIMEOUT_SECONDS = 30.0


class PortForwardError(RuntimeError):
    """`kubectl port-forward` did not start forwarding."""


def port_forward_argv(kubeconfig: Path, namespace: str, service: str, port: int) -> list[str]:
    return [
        str(kubectl_binary()),
        "--kubeconfig",
        str(kubeconfig),
        "-n",
        namespace,
        "port-forward",
        "--address",
        "127.0.0.1",
        f"service/{service}",
        f":{port}",
    ]


def forwarded_port(line: str) -> int | None:
    """The local port of kubectl's "Forwarding from 127.0.0.1:PORT -> ..." line, or None."""
    match = FORWARDING.search(line)
    return int(match.group(1)) if match else None


class PortForwards:
    def __init__(self, kubeconfig: Callable[[], Path], namespace: str, logs: Path) -> None:
        self.kubeconfig = kubeconfig  # called for each forward: a kubeconfig's token may expire
        self.namespace = namespace
        self.logs = logs
        self._open: dict[tuple[str, int], tuple[subprocess.Popen[str], int]] = {}

    def url(self, service: str, port: int) -> str:
        """`http://127.0.0.1:LOCAL` forwarding to `service:port`."""
        if (service, port) not in self._open:
            self._open[service, port] = self._start(service, port)
        return f"http://127.0.0.1:{self._open[service, port][1]}"

    def _start(self, service: str, port: int) -> tuple[subprocess.Popen[str], int]:
        # kubectl prints a line per connection: it writes to a file, so that it never blocks on a pipe
        log = self.logs / f"port-forward-{service}-{port}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as output:
            process = subprocess.Popen(
                port_forward_argv(self.kubeconfig(), self.namespace, service, port),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
        deadline = time.monotonic() + OPEN_TIMEOUT_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            local = next(filter(None, map(forwarded_port, log.read_text().splitlines())), None)
            if local is not None:
                return process, local
            time.sleep(0.1)
        process.kill()
        process.wait()
        raise PortForwardError(f"kubectl port-forward service/{service} {port}: {log.read_text()[-500:]}")

    def close(self) -> None:
        for process, _ in self._open.values():
            process.terminate()
        for process, _ in self._open.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._open.clear()


class ForwardedStage(Stage):
    """A stage that reaches its Services through port-forwards."""

    @cached_property
    def forwards(self) -> PortForwards:
        return PortForwards(lambda: self.kubeconfig, self.namespace, self.logs)

    def service_url(self, service: str, port: int = 8080) -> str:
        return self.forwards.url(service, port)

    @property
    def kafka_bootstrap(self) -> None:
        return None

    def close(self) -> None:
        self.forwards.close()
        super().close()

"""The local cloud's supervisor: its components in one declared table, and `up`, `status` and `down`.

`up` starts each component as a detached process (a session of its own, so that it outlives `up` and its
whole group can be signalled), after the components it needs are healthy; waits, bounded, until each
answers its health check; records everything in the state file (see cloudstate.py) and prints a summary.
A component whose program does not exist here is not started: an optional one (Prometheus) is `skipped`,
any other `failed`, and the rest still runs. A component that exits or stays unhealthy makes `up` stop
everything it started. `down` stops the process groups (SIGTERM, then SIGKILL after a grace period) and
any stray process that carries the cloud's marker, and waits until none lives and no port listens.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sim import aws
from sim.supervisor.process import ManagedProcess, free_port, http_ok, tcp_open
from sim.supervisor.state import (
    MARKER,
    CloudState,
    ComponentRecord,
    StateDirUnusable,
    alive,
    marked_processes,
    read_state,
)
from sim.supervisor.state import start_time as process_start_time

HOST = "127.0.0.1"
HEALTH_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
KILL_WAIT_SECONDS = 5.0
PORT_WAIT_SECONDS = 10.0
EXIT_OK, EXIT_FAILED, EXIT_NOT_RUNNING = 0, 1, 3
PROMETHEUS_CONFIG = """\
# The local cloud's Prometheus: scrapes nothing yet.
global:
  scrape_interval: 15s
scrape_configs: []
"""


@dataclass(frozen=True)
class CloudConfig:
    """Where the cloud lives and listens; a port of 0 is a free port chosen at `up`."""

    state_dir: Path
    host: str = HOST
    aws_port: int = 4566
    eks_port: int = 0
    alb_port: int = 8080
    alb_admin_port: int = 0
    telemetry_port: int = 4318
    prometheus_port: int = 9090
    #: the 127.N.0.0/16 blocks the EKS binding gives its clusters' pods and Services: two clouds running
    #: at once need blocks of their own, or their pods' addresses collide
    eks_address_blocks: str = "160-199"

    def __post_init__(self) -> None:
        # every path derived from it is handed to processes that run in other directories
        object.__setattr__(self, "state_dir", self.state_dir.absolute())

    @property
    def aws_endpoint(self) -> str:
        return f"http://{self.host}:{self.aws_port}"

    @property
    def image_store(self) -> Path:
        """The nodes' image store: where `python -m containers.nodestore load` puts images by default."""
        return Path(os.environ.get("SHOPSTACK_IMAGE_STORE", self.state_dir / "images")).absolute()

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    def with_free_ports(self) -> CloudConfig:
        def pick(port: int) -> int:
            return port or free_port(self.host)

        return replace(
            self,
            aws_port=pick(self.aws_port),
            eks_port=pick(self.eks_port),
            alb_port=pick(self.alb_port),
            alb_admin_port=pick(self.alb_admin_port),
            telemetry_port=pick(self.telemetry_port),
            prometheus_port=pick(self.prometheus_port),
        )


@dataclass(frozen=True)
class Component:
    """One line of the table: what runs, where it listens, how its health is told, what it needs first.

    `missing` says why the component cannot run here (None when it can); an `optional` one is then
    skipped, any other failed."""

    name: str
    command: Callable[[CloudConfig], list[str]]
    ports: Callable[[CloudConfig], list[int]]
    health_url: Callable[[CloudConfig], str]
    address: Callable[[CloudConfig], str]
    needs: tuple[str, ...] = ()
    env: Callable[[CloudConfig], dict[str, str]] = lambda config: dict[str, str]()
    missing: Callable[[], str | None] = lambda: None
    optional: bool = False
    prepare: Callable[[CloudConfig], None] = lambda config: None


def module_missing(module: str) -> Callable[[], str | None]:
    def missing() -> str | None:
        spec = importlib.util.find_spec(module)
        package = spec is not None and spec.submodule_search_locations is not None
        if spec is None or (package and importlib.util.find_spec(f"{module}.__main__") is None):
            return f"`python -m {module}` does not exist yet"
        return None

    return missing


def binary_missing(binary: str) -> Callable[[], str | None]:
    def missing() -> str | None:
        return None if shutil.which(binary) else f"the `{binary}` binary is not installed"

    return missing


def _prepare_prometheus(config: CloudConfig) -> None:
    directory = config.state_dir / "prometheus"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "prometheus.yml").write_text(PROMETHEUS_CONFIG)


def _url(host: str, port: int, path: str = "") -> str:
    return f"http://{host}:{port}{path}"


COMPONENTS: tuple[Component, ...] = (
    Component(
        "aws",
        lambda c: aws.server_command(c.host, c.aws_port),
        lambda c: [c.aws_port],
        lambda c: _url(c.host, c.aws_port, aws.HEALTH_PATH),
        lambda c: c.aws_endpoint,
        env=lambda c: dict(aws.SERVER_ENV),
    ),
    Component(
        "eks",
        lambda c: (
            [
                sys.executable,
                "-m",
                "sim.eks",
                "--aws-endpoint",
                c.aws_endpoint,
                "--state-dir",
                str(c.state_dir / "eks"),
                "--host",
                c.host,
                "--port",
                str(c.eks_port),
                "--image-store",
                str(c.image_store),
                "--address-blocks",
                c.eks_address_blocks,
                "--alb-admin-url",
                _url(c.host, c.alb_admin_port),
            ]
        ),
        lambda c: [c.eks_port],
        lambda c: _url(c.host, c.eks_port, "/healthz"),
        lambda c: _url(c.host, c.eks_port),
        needs=("aws",),
        env=lambda c: aws.client_env(c.aws_endpoint),
        missing=module_missing("sim.eks"),
    ),
    Component(
        "alb",
        lambda c: (
            [
                sys.executable,
                "-m",
                "sim.alb",
                "--aws-endpoint",
                c.aws_endpoint,
                "--host",
                c.host,
                "--port",
                str(c.alb_port),
                "--admin-port",
                str(c.alb_admin_port),
                "--access-log",
                str(c.logs / "alb-access.log"),
            ]
        ),
        lambda c: [c.alb_port, c.alb_admin_port],
        lambda c: _url(c.host, c.alb_admin_port, "/healthz"),
        lambda c: _url(c.host, c.alb_port),
        needs=("aws",),
        env=lambda c: aws.client_env(c.aws_endpoint),
        missing=module_missing("sim.alb"),
    ),
    Component(
        "telemetry",
        lambda c: [sys.executable, "-m", "sim.telemetry", "--host", c.host, "--port", str(c.telemetry_port)],
        lambda c: [c.telemetry_port],
        lambda c: _url(c.host, c.telemetry_port, "/healthz"),
        lambda c: _url(c.host, c.telemetry_port),
    ),
    Component(
        "prometheus",
        lambda c: [
            "prometheus",
            f"--config.file={c.state_dir / 'prometheus' / 'prometheus.yml'}",
            f"--storage.tsdb.path={c.state_dir / 'prometheus' / 'data'}",
            f"--web.listen-address={c.host}:{c.prometheus_port}",
        ],
        lambda c: [c.prometheus_port],
        lambda c: _url(c.host, c.prometheus_port, "/-/ready"),
        lambda c: _url(c.host, c.prometheus_port),
        missing=binary_missing("prometheus"),
        optional=True,
        prepare=_prepare_prometheus,
    ),
)


class UpFailed(Exception):
    """A component did not come up; the message is one line naming it, why, and its log."""


@dataclass
class Supervisor:
    """`up`, `status` and `down` of the cloud in `config.state_dir`, with `components` as its table."""

    config: CloudConfig
    components: Sequence[Component] = COMPONENTS
    console: Console = field(default_factory=lambda: Console(soft_wrap=True))
    _healthy: set[str] = field(default_factory=set)

    # -- up

    def up(self) -> int:
        with self._locked() as locked:
            if not locked:
                return self._say_busy()
            existing = read_state(self.config.state_dir)
            if existing is not None and existing.running():
                pids = ", ".join(f"{c.name} {c.pid}" for c in existing.running())
                self.console.print(
                    f"a local cloud already runs from {self.config.state_dir} ({pids}): "
                    "`python -m sim status` shows it, `python -m sim down` stops it"
                )
                return EXIT_FAILED
            config = self.config.with_free_ports()
            state = CloudState(config.state_dir)
            try:
                self._start_all(config, state)
            except UpFailed as err:
                self._stop(state)
                state.remove()
                self.console.print(f"[red]up failed[/red]: {err}; everything it started is stopped")
                return EXIT_FAILED
            self.console.print(summary(state))
            failed = [c for c in state.components if c.state == "failed"]
            for record in failed:
                self.console.print(f"[red]{record.name} failed[/red]: {record.reason}; the rest runs")
            return EXIT_FAILED if failed else EXIT_OK

    def _start_all(self, config: CloudConfig, state: CloudState) -> None:
        available: list[Component] = []
        for component in self.components:
            reason = component.missing()
            if reason is None and (busy := [p for p in component.ports(config) if tcp_open(config.host, p)]):
                raise UpFailed(f"{component.name}: port {busy[0]} is already in use on {config.host}")
            if reason is not None:
                kind = "skipped" if component.optional else "failed"
                state.components.append(ComponentRecord(component.name, kind, reason=reason))
            else:
                available.append(component)
        started: dict[str, tuple[ManagedProcess, ComponentRecord]] = {}
        with self.console.status("starting the local cloud") as progress:
            for component in available:
                for need in component.needs:
                    if need in started:
                        progress.update(f"waiting for {need} (needed by {component.name})")
                        self._wait_healthy(*started[need])
                progress.update(f"starting {component.name}")
                started[component.name] = self._start(config, component, state)
            for name, (process, record) in started.items():
                progress.update(f"waiting for {name} to be healthy")
                self._wait_healthy(process, record)
        order = {c.name: i for i, c in enumerate(self.components)}
        state.components.sort(key=lambda c: order.get(c.name, len(order)))
        state.write()

    def _start(
        self, config: CloudConfig, component: Component, state: CloudState
    ) -> tuple[ManagedProcess, ComponentRecord]:
        component.prepare(config)
        log = config.logs / f"{component.name}.log"
        env = {**os.environ, **component.env(config), MARKER: str(config.state_dir.resolve())}
        process = ManagedProcess(component.name, component.command(config), log, env=env)
        try:
            process.start()
        except OSError as err:
            raise UpFailed(f"{component.name}: cannot start: {err}") from None
        record = ComponentRecord(
            component.name,
            "started",
            address=component.address(config),
            health_url=component.health_url(config),
            ports=component.ports(config),
            pid=process.pid,
            start_time=process_start_time(process.pid),
            log=str(log),
        )
        state.components.append(record)
        state.write()
        return process, record

    def _wait_healthy(self, process: ManagedProcess, record: ComponentRecord) -> None:
        if record.name in self._healthy:
            return
        began = time.monotonic()
        deadline = began + HEALTH_TIMEOUT_SECONDS
        while not http_ok(record.health_url):
            if not process.running():
                raise UpFailed(f"{record.name} exited with {process.returncode()} (see {record.log})")
            if time.monotonic() > deadline:
                raise UpFailed(
                    f"{record.name} not healthy after {HEALTH_TIMEOUT_SECONDS:.0f}s at "
                    f"{record.health_url} (see {record.log})"
                )
            time.sleep(0.1)
        self._healthy.add(record.name)
        self.console.print(
            f"[green]✓[/green] {record.name} healthy at {record.address} ({time.monotonic() - began:.1f}s)"
        )

    # -- status

    def status(self) -> int:
        state = read_state(self.config.state_dir)
        if state is None:
            self.console.print(f"no local cloud runs from {self.config.state_dir}")
            return EXIT_NOT_RUNNING
        self.console.print(summary(state))
        healthy = all(health(c) in ("healthy", "skipped") for c in state.components)
        return EXIT_OK if healthy else EXIT_FAILED

    # -- down

    def down(self) -> int:
        if not self.config.state_dir.is_dir() and not any(marked_processes(self.config.state_dir)):
            self.console.print(f"no local cloud runs from {self.config.state_dir}: nothing to stop")
            return EXIT_OK
        with self._locked() as locked:
            if not locked:
                return self._say_busy()
            state = read_state(self.config.state_dir)
            if state is None and not any(marked_processes(self.config.state_dir)):
                self.console.print(f"no local cloud runs from {self.config.state_dir}: nothing to stop")
                return EXIT_OK
            state = state or CloudState(self.config.state_dir)
            with self.console.status("stopping the local cloud"):
                left = self._stop(state)
            if left:
                self.console.print(f"[red]down failed[/red]: {left}")
                return EXIT_FAILED
            state.remove()
            names = ", ".join(c.name for c in state.components if c.state == "started") or "strays"
            self.console.print(f"stopped the local cloud in {self.config.state_dir} ({names})")
            return EXIT_OK

    def _stop(self, state: CloudState) -> str:
        """Stop every process of the cloud; '' when none lives and no port listens, else what is left."""
        leaders = state.running()
        groups = [c.pid for c in leaders if c.pid is not None]
        for pid in [*groups, *marked_processes(state.state_dir)]:
            _signal(pid, signal.SIGTERM, group=pid in groups)
        if not _wait(lambda: not self._alive(state, leaders), STOP_GRACE_SECONDS):
            for pid in [*groups, *marked_processes(state.state_dir)]:
                _signal(pid, signal.SIGKILL, group=pid in groups)
            if not _wait(lambda: not self._alive(state, leaders), KILL_WAIT_SECONDS):
                return "processes still alive: " + ", ".join(map(str, self._alive(state, leaders)))
        ports = [(c.name, p) for c in state.components if c.state == "started" for p in c.ports]

        def listening() -> list[str]:
            return [f"{name} port {port}" for name, port in ports if tcp_open(self.config.host, port)]

        if not _wait(lambda: not listening(), PORT_WAIT_SECONDS):
            return "still listening: " + ", ".join(listening())
        return ""

    @staticmethod
    def _alive(state: CloudState, leaders: list[ComponentRecord]) -> list[int]:
        own = [c.pid for c in leaders if c.pid is not None and alive(c.pid, c.start_time)]
        return sorted({*own, *marked_processes(state.state_dir)})

    # -- the lock that keeps two `up`/`down` of one state dir apart

    @contextlib.contextmanager
    def _locked(self) -> Iterator[bool]:
        try:
            self.config.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StateDirUnusable(
                f"cannot make the state dir {self.config.state_dir}: {err.strerror}"
            ) from None
        with (self.config.state_dir / ".lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True

    def _say_busy(self) -> int:
        self.console.print(f"another `up` or `down` of {self.config.state_dir} is in progress")
        return EXIT_FAILED


def health(record: ComponentRecord) -> str:
    """healthy, unhealthy (alive, failing its check), dead, skipped or failed."""
    if record.state != "started":
        return record.state
    if record.pid is None or not alive(record.pid, record.start_time):
        return "dead"
    return "healthy" if http_ok(record.health_url) else "unhealthy"


def summary(state: CloudState) -> Table:
    colours = {"healthy": "green", "skipped": "yellow"}
    table = Table("component", "address", "health", "pid", title=f"local cloud ({state.state_dir})")
    for record in state.components:
        status = health(record)
        detail = f"{status}: {record.reason}" if record.reason else status
        colour = colours.get(status, "red")
        table.add_row(record.name, record.address, f"[{colour}]{detail}[/{colour}]", str(record.pid or ""))
    return table


def _signal(pid: int, sig: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True

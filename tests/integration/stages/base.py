"""The stage interface: all the integration suite knows of the stage it runs against.

A stage is brought up in phases (`up`, `build`, `deploy`; `down` at the end), each timed, and then gives
the suite: the shop's public URL (the ALB), the deploy's settings (what it declared derives from them),
clients of the stage's AWS account and Kubernetes cluster (the same `infra.cloud.Cloud` the deploy acts
through, so faults are carried out through the real APIs), in-cluster Services reached from the runner,
the Kafka bootstrap, the telemetry (traces through Jaeger's query API, logs from the collector's log,
metrics through Prometheus or the collector's Prometheus exporter), and the deploy's own flag operation.
"""

from __future__ import annotations

import abc
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service
from rich.console import Console

from infra.cloud import Cloud
from infra.desired import Overrides, model_config
from infra.k8s.facts import LiveObjects
from infra.k8s.release import plan_releases, release_kinds
from infra.model import render
from infra.model.common import Obj
from infra.model.release import coloured
from infra.settings import Settings
from tests.support.collector_logs import CollectorLogs, pod_logs
from tests.support.jaeger import JaegerQuery
from tests.support.pyinfra_run import PYINFRA, REPO

DEPLOY = REPO / "deploy.py"
TEARDOWN = REPO / "teardown.py"
BUILD_DIR = REPO / "build"
#: each stage's logs (its steps' output, port-forwards, phases.json), kept after the run
STAGE_LOGS = Path(os.environ.get("SHOPSTACK_STAGE_LOGS", REPO / ".stage"))
BUILD_TIMEOUT_SECONDS = 900
DEPLOY_TIMEOUT_SECONDS = 1800


class StageError(Exception):
    """The stage cannot be brought up or used; the message is one line saying why and what to do."""


@dataclass
class Phases:
    """Wall-clock seconds of each phase of a stage's run, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)
    _started: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        self.begin(phase)
        try:
            yield
        finally:
            self.end(phase)

    def begin(self, phase: str) -> None:
        self._started[phase] = time.monotonic()

    def end(self, phase: str) -> None:
        began = self._started.pop(phase, None)
        if began is not None:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.monotonic() - began

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def as_dict(self) -> dict[str, float]:
        return {**{name: round(s, 1) for name, s in self.seconds.items()}, "total": round(self.total, 1)}


class Stage(abc.ABC):
    """One place the shop runs. Subclasses bring it up and say how its parts are reached."""

    name: ClassVar[str]
    #: whether the cluster's network enforces NetworkPolicies (the local cloud's does not)
    enforces_network_policies: ClassVar[bool] = False
    #: whether the shop's entrance is the ALB the Ingress makes (kind has no load balancer controller)
    has_alb: ClassVar[bool] = True
    #: whether the cluster's nodes follow the EKS node group (kind's are its own)
    nodes_follow_node_group: ClassVar[bool] = True

    def __init__(self, console: Console, phases: Phases, logs: Path, keep: bool = False) -> None:
        self.console = console
        self.phases = phases
        self.logs = logs
        self.keep = keep
        #: test the shop as it is deployed (`--deployed`): what a release pipeline verifies, unbuilt
        self.deployed = False

    # -- lifecycle

    @abc.abstractmethod
    def start(self) -> None:
        """Bring the stage up, build and deploy (timing each phase); raises `StageError`."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Take down what `start` brought up (unless `keep`); never raises for what is already gone."""

    def build(self) -> None:
        """`python -m containers build`: the nine images into `build/` (nothing whose inputs did not
        change is built again)."""
        if self.deployed:
            self.console.print("testing the images deployed now (--deployed): nothing built")
            return
        argv = [sys.executable, "-m", "containers", "build", "--out", str(BUILD_DIR)]
        self.step("building the images", argv, "build.log", BUILD_TIMEOUT_SECONDS)

    def deploy(self, deploy_file: Path = DEPLOY) -> None:
        """`pyinfra -y INVENTORY deploy.py`, as a person runs it."""
        if self.deployed and deploy_file == DEPLOY:
            self.console.print("testing the shop as it is deployed (--deployed): nothing deployed")
            return
        argv = [str(PYINFRA), "-y", str(self.inventory), str(deploy_file)]
        what = f"pyinfra {self.inventory.relative_to(REPO)} {deploy_file.name}"
        self.step(what, argv, f"{deploy_file.stem}.log", DEPLOY_TIMEOUT_SECONDS, env=self.inventory_env)

    def step(
        self, what: str, argv: list[str], log: str, timeout: float, env: Mapping[str, str] | None = None
    ) -> None:
        """Run one step of bringing the stage up or down, its output in `logs/<log>`; raises
        `StageError` with the log's end when it fails."""
        path = self.logs / log
        path.unlink(missing_ok=True)
        with self.console.status(f"{what} (log: {path})"):
            code = run_logged(argv, path, env=env, timeout=timeout)
        if code != 0:
            raise StageError(f"{what} failed (exit {code}); the end of {path}:\n{tail(path)}")
        self.console.print(f"[green]✓[/green] {what}")

    def urls(self) -> dict[str, str]:
        """What a person needs to use the shop that `--keep` leaves running."""
        return {"shop": self.shop_url, "kubeconfig": str(self.kubeconfig)}

    # -- what the suite uses

    @property
    @abc.abstractmethod
    def shop_url(self) -> str:
        """The shop's public entrance: the ALB."""

    @property
    @abc.abstractmethod
    def kubeconfig(self) -> Path: ...

    @property
    @abc.abstractmethod
    def inventory(self) -> Path:
        """The pyinfra inventory the deploy and the ad-hoc operations run with."""

    @property
    def inventory_env(self) -> Mapping[str, str]:
        """Variables the inventory reads (besides the caller's environment)."""
        return {}

    @cached_property
    def settings(self) -> Settings:
        """The settings the deploy ran with (as its inventory gives them)."""
        return Settings.parse(self.host_data())

    @abc.abstractmethod
    def host_data(self) -> dict[str, Any]:
        """The inventory's host data for the deploy's host."""

    @cached_property
    def cloud(self) -> Cloud:
        """The stage's AWS account and cluster, reached as the deploy reaches them."""
        return Cloud(self.settings)

    def aws(self, service: str) -> Any:
        """A boto3 client of `service` in the stage's account."""
        return self.cloud.client(service)

    def kube(self) -> Client:
        client = self.cloud.kube()
        if client is None:
            raise StageError(f"the {self.name} stage has no cluster {self.settings.cluster_name}")
        return client

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def declared_objects(self) -> list[Obj]:
        """Every Kubernetes object the deploy declares for this stage now (with the operators' overrides,
        and each blue-green service on the colour that is live)."""
        overrides = Overrides().read(self.cloud, bucket=self.settings.state_bucket)
        config = model_config(self.settings, overrides)
        live = LiveObjects().read(self.cloud, kinds=release_kinds())
        plan = plan_releases(config, live, overrides.get("rolled_back", {}))
        return render(replace(config, releases=plan.current))

    def live_deployment(self, service: str) -> str:
        """The name of the Deployment whose pods take `service`'s traffic (its live colour's)."""
        overrides = Overrides().read(self.cloud, bucket=self.settings.state_bucket)
        config = model_config(self.settings, overrides)
        live = LiveObjects().read(self.cloud, kinds=release_kinds())
        colour = plan_releases(config, live).live(service)
        return coloured(service, colour) if colour else service

    @abc.abstractmethod
    def service_url(self, service: str, port: int = 8080) -> str:
        """A URL of the in-cluster Service `service` that the runner can reach."""

    @property
    @abc.abstractmethod
    def kafka_bootstrap(self) -> str | None:
        """The broker as the runner reaches it, or None where it cannot (the consumers' metrics tell)."""

    @cached_property
    def telemetry(self) -> JaegerQuery:
        """The trace store's query API (Jaeger's, on 16686): every span the collector passed on."""
        return JaegerQuery(self.service_url("jaeger", 16686))

    @cached_property
    def collector_logs(self) -> CollectorLogs:
        """The services' log records, as the collector's debug exporter wrote them to its pod's log."""
        return CollectorLogs(pod_logs(self.kube(), self.namespace))

    @property
    def collector_metrics_url(self) -> str:
        """The collector's Prometheus exporter (what Prometheus scrapes of it), from the runner."""
        return self.service_url("otel-collector", 8889)

    @cached_property
    def prometheus_url(self) -> str | None:
        """Prometheus' API, or None where the deploy left Prometheus out."""
        if not self.settings.prometheus:
            return None
        deployment = self.kube().get(Deployment, "prometheus", namespace=self.namespace)
        if not (deployment.status and deployment.status.availableReplicas):
            raise StageError("the deploy declares Prometheus, but its Deployment has no available replica")
        return self.service_url("prometheus", 9090)

    def cluster_ip(self, service: str) -> str:
        spec = self.kube().get(Service, service, namespace=self.namespace).spec
        if spec is None or not spec.clusterIP:
            raise StageError(f"Service {service} has no cluster IP")
        return spec.clusterIP

    def pyinfra(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """`pyinfra -y INVENTORY ARGS` as an operator runs it (an ad-hoc operation, a fact, the deploy)."""
        return subprocess.run(
            [str(PYINFRA), "-y", str(self.inventory), *args],
            cwd=REPO,
            env={**os.environ, **self.inventory_env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def set_flag(self, flag: str, value: str) -> None:
        """Set (or with value `off`, clear) a failure flag through the deploy's flag operation."""
        done = self.pyinfra("infra.ops.set_flag", f"flag={flag}", f"value={value}")
        if done.returncode != 0:
            raise StageError(f"set_flag {flag}={value} failed:\n{(done.stdout + done.stderr)[-3000:]}")

    def close(self) -> None:
        """Release the clients (not the stage)."""
        if "telemetry" in self.__dict__:
            self.telemetry.close()


def run_logged(argv: list[str], log: Path, *, env: Mapping[str, str] | None = None, timeout: float) -> int:
    """Run `argv` from the repository with its output appended to `log`; its exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as output:
        return subprocess.run(
            argv,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        ).returncode


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""

"""The local stage: the offline local cloud (`python -m sim up`), the images built into `build/`, and
`pyinfra inventory/local.py deploy.py`, exactly as a person runs them.

Without `--keep` the cloud lives in `.sim-suite/` ($SHOPSTACK_SUITE_STATE) on free ports and is stopped at
the end, also when a test fails or the run is interrupted; a cloud a killed run left there is stopped
first. With `--keep` it is the everyday cloud, `.sim/` on the conventional ports (the shop on
127.0.0.1:8080), reused when it already runs, and left running, so that `pyinfra inventory/local.py ...`
and `python -m sim down` work on it with no arguments.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from infra.stages.emulator import local_cloud
from sim.supervisor.process import free_port
from sim.supervisor.state import read_state
from tests.integration.stages.base import REPO, STAGE_LOGS, Phases, Stage, StageError, run_logged, tail

INVENTORY = REPO / "inventory" / "local.py"
#: the everyday cloud `--keep` uses: where `inventory/local.py` finds it ($SHOPSTACK_SIM_STATE, default .sim)
KEPT_STATE = Path(os.environ.get("SHOPSTACK_SIM_STATE", REPO / ".sim"))
#: where the suite's own cloud lives (a run with --keep uses `.sim`)
SUITE_STATE = Path(os.environ.get("SHOPSTACK_SUITE_STATE", REPO / ".sim-suite"))
#: the suite's cloud takes its own 127.N/16 blocks, apart from those of a cloud the user runs in `.sim`
SUITE_ADDRESS_BLOCKS = "180-189"
UP_TIMEOUT_SECONDS = 240
DOWN_TIMEOUT_SECONDS = 240
CLOUD_PORTS = ("aws", "eks", "alb", "alb-admin", "telemetry", "prometheus")


class LocalStage(Stage):
    name = "local"

    def __init__(self, console: Console, phases: Phases, keep: bool = False) -> None:
        super().__init__(console, phases, STAGE_LOGS / "local", keep)
        self.state_dir = (KEPT_STATE if keep else SUITE_STATE).resolve()

    # -- lifecycle

    def start(self) -> None:
        with self.phases.timed("up"):
            self._up()
        with self.phases.timed("build"):
            self.build()
        with self.phases.timed("deploy"):
            self.deploy()

    def stop(self) -> None:
        self.close()
        if self.keep:
            return
        with self.phases.timed("down"):
            code = self._sim("down", "--state-dir", str(self.state_dir), timeout=DOWN_TIMEOUT_SECONDS)
        if code != 0:
            self.console.print(
                f"[red]`python -m sim down` failed[/red] (exit {code}): see {self._log('down')}"
            )

    def _up(self) -> None:
        running = read_state(self.state_dir)
        if running is not None and running.running():
            if self.keep:
                self.console.print(f"reusing the local cloud that runs from {self.state_dir}")
                return
            self.console.print(f"stopping the local cloud a killed run left in {self.state_dir}")
            self._sim("down", "--state-dir", str(self.state_dir), timeout=DOWN_TIMEOUT_SECONDS)
        options = ["--state-dir", str(self.state_dir)]
        if not self.keep:
            options += [item for name in CLOUD_PORTS for item in (f"--{name}-port", str(free_port()))]
            options += ["--eks-address-blocks", SUITE_ADDRESS_BLOCKS]
        code = self._sim("up", *options, timeout=UP_TIMEOUT_SECONDS)
        if code != 0:
            raise StageError(f"`python -m sim up` failed (exit {code}); its output:\n{tail(self._log('up'))}")

    def _sim(self, *args: str, timeout: float) -> int:
        return run_logged([sys.executable, "-m", "sim", *args], self._log(args[0]), timeout=timeout)

    def _log(self, command: str) -> Path:
        return self.logs / f"sim-{command}.log"

    # -- what the suite uses

    @property
    def inventory(self) -> Path:
        return INVENTORY

    @property
    def inventory_env(self) -> Mapping[str, str]:
        return {"SHOPSTACK_SIM_STATE": str(self.state_dir)}

    def host_data(self) -> dict[str, Any]:
        return local_cloud(self.state_dir, {**os.environ, **self.inventory_env})

    @property
    def shop_url(self) -> str:
        return self._component("alb")

    @property
    def kubeconfig(self) -> Path:
        assert self.settings.kubeconfig is not None, "the local inventory reaches its cluster by kubeconfig"
        return self.settings.kubeconfig

    def service_url(self, service: str, port: int = 8080) -> str:
        return f"http://{self.cluster_ip(service)}:{port}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.cluster_ip('kafka')}:9092"

    def urls(self) -> dict[str, str]:
        urls = {**super().urls(), "Jaeger query API": f"{self.service_url('jaeger', 16686)}/api/services"}
        if self.prometheus_url:
            urls["Prometheus"] = self.prometheus_url
        urls["Grafana"] = self.service_url("grafana", 3000)
        urls["stop it"] = f"python -m sim down --state-dir {self.state_dir}"
        return urls

    def _component(self, name: str) -> str:
        state = read_state(self.state_dir)
        record = next((c for c in state.components if c.name == name), None) if state else None
        if record is None or not record.address:
            raise StageError(f"the local cloud in {self.state_dir} has no {name}")
        return record.address

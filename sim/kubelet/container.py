"""One container of a pod, supervised: start from its image, probe, sample, restart, stop.

`run()` is the container's life: resolve the image (unpacking it on first use), start the process in a
session of its own with its output in the instance's log file, then, until it exits, run its probes
(startup first; liveness and readiness once started) and sample its session's memory and CPU. An RSS
above the memory limit is a SIGKILL reported as OOMKilled; a liveness or startup failure is a graceful
kill. After an exit the restart policy decides; restarts wait the exponential back-off (CrashLoopBackOff).
`stop()` is preStop, SIGTERM, and SIGKILL once the grace period (which includes preStop) has run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from containers.nodestore import ImageError, ImagePullError, ImageStore, RunSpec
from kube.quantity import format_cpu, format_memory
from sim.kubelet.backoff import Backoff
from sim.kubelet.logs import ContainerLogs
from sim.kubelet.probes import run_handler
from sim.kubelet.procstat import sample
from sim.kubelet.spec import (
    ConfigError,
    ConfigSource,
    ContainerSpec,
    EventRecorder,
    PodSpec,
    Probe,
    container_env,
    expand_all,
)
from sim.kubelet.status import ContainerStatus, State, exit_code, now, terminated
from sim.kubelet.volumes import PodVolumes
from sim.supervisor.lifeline import die_with_parent
from sim.supervisor.state import MARKER


@dataclass
class KubeletConfig:
    """What every container of a node shares; the back-off base and sample period are small in tests."""

    images: ImageStore
    log_root: Path
    backoff_base: float = 10.0
    backoff_max: float = 300.0
    sample_period: float = 1.0
    config_source: ConfigSource | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    volumes_root: Path | None = None  # pods' volumes; default: `volumes` beside log_root
    #: what runs in place of an image the store does not hold: (image reference, pod IP) to a RunSpec, or
    #: None when nothing stands in for it (`sim.standins.table.StandIns`, handed in by `sim.cluster`)
    standins: Callable[[str, str], RunSpec | None] | None = None
    # the cluster network's per-pod variables: service links (under the pod's own variables) and host
    # paths such as the resolver shim's (not translated to the image; PYTHONPATH is prepended)
    service_env: Callable[[PodSpec], Mapping[str, str]] | None = None
    resolver_env: Callable[[PodSpec], Mapping[str, str]] | None = None
    #: where the kubelet's Events go (Pulled, Created, Started, Unhealthy, Killing, BackOff, Failed)
    events: EventRecorder | None = None

    def __post_init__(self) -> None:
        # containers run in their image's working directory: every path they are given must be absolute
        self.log_root = self.log_root.absolute()
        if self.volumes_root is not None:
            self.volumes_root = self.volumes_root.absolute()

    def pod_volumes(self, pod: PodSpec) -> Path:
        root = self.volumes_root or self.log_root.parent / "volumes"
        return root / f"{pod.namespace}_{pod.name}_{pod.uid}"


@dataclass
class Launch:
    """One resolved start of the container."""

    runspec: RunSpec
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    image_id: str


class Container:
    def __init__(
        self,
        pod: PodSpec,
        spec: ContainerSpec,
        pod_ip: str,
        config: KubeletConfig,
        notify: Callable[[], None],
        volumes: PodVolumes,
    ) -> None:
        self.pod = pod
        self.volumes = volumes
        self.spec = spec
        self.pod_ip = pod_ip
        self.config = config
        self.notify = notify
        self.status = ContainerStatus(spec.name, spec.image)
        self.logs = ContainerLogs(config.log_root / f"{pod.namespace}_{pod.name}_{pod.uid}" / spec.name)
        self.backoff = Backoff(config.backoff_base, config.backoff_max)
        self.process: asyncio.subprocess.Process | None = None
        self.launch: Launch | None = None
        self.cpu_cores = 0.0
        self.memory_bytes = 0
        self._stopping = False
        self._wake = asyncio.Event()
        self._oom = False
        self._kill_message: str | None = None
        self._killing: asyncio.Task[None] | None = None

    def _event(self, kind: str, reason: str, message: str) -> None:
        if self.config.events is not None:
            self.config.events(self.pod, kind, reason, message)

    # -- the life of the container

    async def run(self) -> None:
        pulls = Backoff(self.config.backoff_base, self.config.backoff_max)
        while not self._stopping:
            try:
                launch = await asyncio.to_thread(self._prepare)
            except ImagePullError as err:
                reason = "ErrImagePull" if pulls.failures == 0 else "ImagePullBackOff"
                if pulls.failures == 0:
                    self._event("Warning", "Failed", f'Failed to pull image "{self.spec.image}": {err}')
                    self._event("Warning", "Failed", "Error: ErrImagePull")
                else:
                    self._event("Normal", "BackOff", f'Back-off pulling image "{self.spec.image}"')
                await self._wait_after_failure(State("waiting", reason, str(err)), pulls)
                continue
            except (ImageError, ConfigError, OSError) as err:
                config_error = isinstance(err, ConfigError)
                reason = "CreateContainerConfigError" if config_error else "CreateContainerError"
                self._event("Warning", "Failed", f"Error: {err}")
                await self._wait_after_failure(State("waiting", reason, str(err)), pulls)
                continue
            started = asyncio.get_running_loop().time()
            finished = await self._run_instance(launch)
            if self._stopping or not self._restarts(finished.exit_code or 0):
                break
            delay = self.backoff.next_delay(asyncio.get_running_loop().time() - started)
            self.status.last_state = finished
            if delay > 0:
                message = (
                    f"back-off {delay:g}s restarting failed container={self.spec.name} pod={self.pod.name}"
                )
                self.status.state = State("waiting", "CrashLoopBackOff", message)
                self.notify()
                pod = f"{self.pod.name}_{self.pod.namespace}({self.pod.uid})"
                self._event(
                    "Warning",
                    "BackOff",
                    f"Back-off restarting failed container {self.spec.name} in pod {pod}",
                )
                await self._sleep(delay)
            if not self._stopping:
                self.status.restart_count += 1
        if self.status.state.kind == "waiting" and self.status.last_state is not None:
            self.status.state = self.status.last_state  # stopped while backing off: its last exit stands
            self.notify()

    def _restarts(self, code: int) -> bool:
        policy = self.pod.restart_policy
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    async def _wait_after_failure(self, state: State, backoff: Backoff) -> None:
        self.status.state = state
        self.notify()
        await self._sleep(max(backoff.next_delay(0.0), self.config.backoff_base / 10))

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by stop()."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def _prepare(self) -> Launch:
        """Resolve the image and compute argv, env and working dir (blocking: unpacks on first use)."""
        self.volumes.write_all()
        image = self._resolve_image()
        runspec = image.with_mounts(self.volumes.mounts(self.spec.volume_mounts))
        links = self.config.service_env(self.pod) if self.config.service_env else {}
        declared = container_env(
            self.pod, self.spec, self.pod_ip, self.config.config_source, {**self.config.extra_env, **links}
        )
        declared = {name: runspec.env_value(name, value) for name, value in declared.items()}
        env = {**runspec.env, "HOSTNAME": self.pod.name, **declared}
        for name, value in (self.config.resolver_env(self.pod) if self.config.resolver_env else {}).items():
            env[name] = ":".join(filter(None, [value, env.get(name)])) if name == "PYTHONPATH" else value
        if "BIND_HOST" not in declared:
            env["BIND_HOST"] = self.pod_ip
        if MARKER in os.environ:  # so that `python -m sim down` finds the pods of a killed node
            env.setdefault(MARKER, os.environ[MARKER])
        argv = runspec.command(expand_all(self.spec.command, env), expand_all(self.spec.args, env))
        cwd = Path(runspec.path(self.spec.working_dir)) if self.spec.working_dir else runspec.working_dir
        if not cwd.is_dir():
            raise ImageError(f"working dir {self.spec.working_dir or cwd} does not exist in the image")
        image_id = f"{runspec.reference.split('@')[0]}@{runspec.digest}"
        self._event("Normal", "Pulled", f'Container image "{self.spec.image}" already present on machine')
        return Launch(runspec, argv, env, cwd, image_id)

    def _resolve_image(self) -> RunSpec:
        """The image from the node's store, else its stand-in, else ErrImagePull."""
        try:
            return self.config.images.resolve(self.spec.image)
        except ImagePullError:
            standin = self.config.standins(self.spec.image, self.pod_ip) if self.config.standins else None
            if standin is None:
                raise
            return standin

    async def _run_instance(self, launch: Launch) -> State:
        """Start one instance, supervise it until it exits, and return its terminated state."""
        self._oom, self._kill_message, self._killing = False, None, None
        self.status.image_id = launch.image_id
        log_fd: int | None = None
        try:
            log_fd = self.logs.open_instance(self.status.restart_count)
            process = await asyncio.create_subprocess_exec(
                *launch.argv,
                env=launch.env,
                cwd=launch.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        except OSError as err:
            state = State("terminated", "StartError", str(err), 128, now(), now())
            self.status.state = state
            self.notify()
            self._event("Warning", "Failed", f"Error: failed to start container {self.spec.name!r}: {err}")
            return state
        finally:
            if log_fd is not None:
                os.close(log_fd)
        self.process, self.launch = process, launch
        started_at = now()
        self.status.container_id = f"process://{process.pid}"
        self.status.state = State("running", started_at=started_at)
        self.status.started = self.spec.startup is None
        self.status.ready = self.status.started and self.spec.readiness is None
        self.notify()
        self._event("Normal", "Created", f"Created container {self.spec.name}")
        self._event("Normal", "Started", f"Started container {self.spec.name}")
        watchers = [asyncio.create_task(self._monitor(process)), asyncio.create_task(self._probes(process))]
        try:
            returncode = await process.wait()
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            if self._killing is not None:
                await asyncio.gather(self._killing, return_exceptions=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # strays that outlived the main process
        state = terminated(exit_code(returncode), started_at, self._oom, self._kill_message)
        self.status.state, self.status.ready, self.status.started = state, False, False
        self.process = None
        self.cpu_cores, self.memory_bytes = 0.0, 0
        self.notify()
        return state

    # -- watching one instance

    async def _monitor(self, process: asyncio.subprocess.Process) -> None:
        """Sample the session's memory and CPU; SIGKILL it when RSS is over the limit."""
        loop = asyncio.get_running_loop()
        previous: tuple[float, float] | None = None
        while process.returncode is None:
            measured = await asyncio.to_thread(sample, process.pid)
            moment = loop.time()
            self.memory_bytes = measured.rss_bytes
            if previous is not None and moment > previous[0]:
                self.cpu_cores = max(0.0, (measured.cpu_seconds - previous[1]) / (moment - previous[0]))
            previous = (moment, measured.cpu_seconds)
            limit = self.spec.memory_limit
            if limit is not None and measured.rss_bytes > limit:
                self._oom = True
                self._kill_message = f"memory {measured.rss_bytes} bytes over the limit of {limit}"
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                return
            await asyncio.sleep(self.config.sample_period)

    async def _probes(self, process: asyncio.subprocess.Process) -> None:
        if self.spec.startup is not None:
            if not await self._probe_until_decided(self.spec.startup, "Startup"):
                self._begin_kill(process, self._kill_message or "Startup probe failed", self.spec.startup)
                return
            self.status.started = True
            self.status.ready = self.spec.readiness is None
            self.notify()
        async with asyncio.TaskGroup() as group:
            if self.spec.liveness is not None:
                group.create_task(self._liveness(process, self.spec.liveness))
            if self.spec.readiness is not None:
                group.create_task(self._readiness(self.spec.readiness))

    async def _probe_once(self, probe: Probe) -> tuple[bool, str]:
        launch = self.launch
        assert launch is not None
        return await run_handler(
            probe.handler,
            self.spec,
            self.pod_ip,
            launch.env,
            launch.cwd,
            probe.timeout,
            launch.runspec.rewrite_argv,
        )

    async def _probe_until_decided(self, probe: Probe, kind: str) -> bool:
        """Run a startup probe until it succeeds (True) or reaches its failure threshold (False)."""
        await asyncio.sleep(probe.initial_delay)
        failures = 0
        while True:
            ok, message = await self._probe_once(probe)
            if ok:
                return True
            self._event("Warning", "Unhealthy", f"{kind} probe failed: {message}")
            failures += 1
            if failures >= probe.failure_threshold:
                self._kill_message = f"{kind} probe failed: {message}"
                return False
            await asyncio.sleep(probe.period)

    async def _liveness(self, process: asyncio.subprocess.Process, probe: Probe) -> None:
        await asyncio.sleep(probe.initial_delay)
        failures = 0
        while True:
            ok, message = await self._probe_once(probe)
            failures = 0 if ok else failures + 1
            if not ok:
                self._event("Warning", "Unhealthy", f"Liveness probe failed: {message}")
            if failures >= probe.failure_threshold:
                self._begin_kill(process, f"Liveness probe failed: {message}", probe)
                return
            await asyncio.sleep(probe.period)

    async def _readiness(self, probe: Probe) -> None:
        await asyncio.sleep(probe.initial_delay)
        successes = failures = 0
        while True:
            ok, message = await self._probe_once(probe)
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if not ok:
                self._event("Warning", "Unhealthy", f"Readiness probe failed: {message}")
            ready = self.status.ready
            if ok and successes >= probe.success_threshold:
                ready = True
            elif not ok and failures >= probe.failure_threshold:
                ready = False
            if ready != self.status.ready:
                self.status.ready = ready
                self.notify()
            await asyncio.sleep(probe.period)

    def _begin_kill(self, process: asyncio.subprocess.Process, message: str, probe: Probe) -> None:
        """Kill the instance gracefully, outside the probe tasks (which its exit cancels)."""
        self._kill_message = message
        probe_kind = message.split(" probe")[0].lower()  # "liveness" or "startup"
        self._event(
            "Normal", "Killing", f"Container {self.spec.name} failed {probe_kind} probe, will be restarted"
        )
        grace = self.pod.grace if probe.termination_grace is None else probe.termination_grace
        self._killing = asyncio.create_task(self._graceful_kill(process, grace))

    # -- stopping

    async def _graceful_kill(self, process: asyncio.subprocess.Process, grace: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        launch = self.launch
        if self.spec.pre_stop is not None and launch is not None and process.returncode is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await run_handler(
                        self.spec.pre_stop,
                        self.spec,
                        self.pod_ip,
                        launch.env,
                        launch.cwd,
                        grace,
                        launch.runspec.rewrite_argv,
                    )
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout_at(deadline):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    async def stop(self, grace: float | None = None) -> None:
        """Stop for good: no restart; preStop, SIGTERM, SIGKILL after `grace` (the pod's by default)."""
        self._stopping = True
        self._wake.set()
        process = self.process
        if process is not None and process.returncode is None:
            self._event("Normal", "Killing", f"Stopping container {self.spec.name}")
            await self._graceful_kill(process, self.pod.grace if grace is None else grace)

    # -- reading

    def usage(self) -> dict[str, Any]:
        """This container's usage as metrics.k8s.io reports it."""
        return {
            "name": self.spec.name,
            "usage": {"cpu": format_cpu(self.cpu_cores), "memory": format_memory(self.memory_bytes)},
        }

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

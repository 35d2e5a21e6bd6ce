"""pytest support for the local Kubernetes: the `local_cluster` fixture, and a pytest-kubernetes cluster
manager so that tests written for pytest-kubernetes' `k8s` fixture run against it unchanged.

Load it from a conftest.py with `pytest_plugins = ["sim.pytest_plugin"]`. Then:

- `local_cluster` (session-scoped) is a running `python -m sim.cluster` with the controllers and two nodes
  (process kubelets), a kubeconfig for it, and its image store (`local_cluster.load_image(layout)` loads an
  OCI image layout, as `kind load` does);
- pytest-kubernetes' `k8s` fixture gives a `LocalClusterManager` unless `--k8s-provider` names another
  provider: this plugin overrides pytest-kubernetes' `k8s_manager` fixture for that;
- `sim` (session-scoped) is the whole local cloud of `python -m sim up` (AWS emulator, EKS binding, ALB
  data plane, telemetry receiver, Prometheus when installed) in a temporary state directory on free
  ports, so that it never meets a cloud the user runs; `python -m sim down` stops it at the end.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_kubernetes.options import ClusterOptions
from pytest_kubernetes.providers import select_provider_manager
from pytest_kubernetes.providers.base import AClusterManager

from containers.nodestore import ImageStore
from containers.nodestore.store import LoadedImage
from sim.aws import client_env
from sim.cluster import split_addresses
from sim.k8s.kubeconfig import write_kubeconfig
from sim.supervisor.process import ManagedProcess, free_port, http_ok

HOST = "127.0.0.1"
DEFAULT_NODES = ("node-1", "node-2")
READY_TIMEOUT_SECONDS = 20.0
STOP_GRACE_SECONDS = 15.0
CLOUD_TIMEOUT_SECONDS = 180.0
#: Each cluster started in one pytest process gets its own address range, 127.N.0.0/16 from N = 200 on,
#: so that the pods and Services of clusters that run at the same time never share an address.
_address_ranges = itertools.count(200)


@dataclass
class LocalClusterProcess:
    """A running local cluster: its API URL, kubeconfig, image store and server process."""

    url: str
    kubeconfig: Path
    images: ImageStore
    process: ManagedProcess

    def load_image(self, layout: Path) -> LoadedImage:
        """Load an OCI image layout into the nodes' image store, as `kind load` does."""
        return self.images.load(layout)

    def stop(self) -> int | None:
        """Stop the server, and with it every pod process; the server's exit code."""
        return self.process.stop(grace=STOP_GRACE_SECONDS)


def start_local_cluster(
    workdir: Path,
    images: ImageStore | None = None,
    nodes: Sequence[str] = DEFAULT_NODES,
    addresses: str | None = None,
    extra_args: Sequence[str] = (),
) -> LocalClusterProcess:
    """Start `python -m sim.cluster` with `nodes` on a free loopback port, its pods in the lower half of
    `addresses` and its Services in the upper half; its logs and kubelet state go under `workdir`. Raises
    with the server's log when it does not become ready."""
    images = images or ImageStore(workdir / "images")
    pod_cidr, service_cidr = split_addresses(addresses or f"127.{next(_address_ranges)}.0.0/16")
    port = free_port(HOST)
    url = f"http://{HOST}:{port}"
    argv = [sys.executable, "-m", "sim.cluster", "--host", HOST, "--port", str(port)]
    for node in nodes:
        argv += ["--node", node]
    argv += ["--image-store", str(images.root), "--pod-cidr", pod_cidr, "--service-cidr", service_cidr]
    argv += ["--kubelet-dir", str(workdir / "kubelet"), "--log-level", "INFO", *extra_args]
    process = ManagedProcess("k8s-api", argv, workdir / "k8s-api.log").start()
    try:
        process.wait_ready(lambda: http_ok(f"{url}/readyz"), timeout=READY_TIMEOUT_SECONDS)
    except Exception:
        process.stop(grace=5)
        raise
    return LocalClusterProcess(url, write_kubeconfig(workdir / "kubeconfig", url), images, process)


class LocalClusterManager(AClusterManager):  # type: ignore[misc]
    """pytest-kubernetes' manager for the local cluster: `create()` starts it, `delete()` stops it and
    removes its files, `load_image(path)` loads an OCI image layout into its nodes."""

    _cluster: LocalClusterProcess | None = None
    _workdir: Path | None = None

    @classmethod
    def get_binary_name(cls) -> str:
        return sys.executable

    def _on_create(self, cluster_options: ClusterOptions, **kwargs: Any) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.cluster_name}-"))
        self._cluster = start_local_cluster(self._workdir)
        kubeconfig = Path(cluster_options.kubeconfig_path)
        kubeconfig.write_text(self._cluster.kubeconfig.read_text())

    def _on_delete(self) -> None:
        if self._cluster is not None:
            self._cluster.stop()
            self._cluster = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def load_image(self, image: str) -> None:
        if self._cluster is None:
            raise RuntimeError(f"cluster {self.cluster_name} is not created: call create() first")
        self._cluster.load_image(Path(image))


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalClusterProcess]:
    """The local cluster, started once per session and stopped (with every pod) at its end."""
    cluster = start_local_cluster(tmp_path_factory.mktemp("local-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def k8s_manager(request: pytest.FixtureRequest) -> Callable[[str | None], type[AClusterManager]]:
    """pytest-kubernetes' manager factory: the local cluster unless a provider is named."""
    options = {
        "cluster_name": request.config.getoption("k8s_cluster_name"),
        "provider": request.config.getoption("k8s_provider"),
        "version": request.config.getoption("k8s_version"),
        "provider_config": request.config.getoption("k8s_provider_config"),
        "kubeconfig_override": request.config.getoption("k8s_kubeconfig_override"),
        "kubeconfig": request.config.getoption("k8s_kubeconfig"),
    }

    def factory(provider: str | None = None) -> type[AClusterManager]:
        provider = provider or options["provider"]
        if not provider and not options["kubeconfig"] and not options["kubeconfig_override"]:
            return LocalClusterManager
        return select_provider_manager(provider, options)  # type: ignore[no-any-return]

    return factory


@dataclass(frozen=True)
class LocalCloud:
    """The endpoints of a running `python -m sim up`."""

    state_dir: Path
    aws: str
    eks: str
    alb: str
    telemetry: str
    prometheus: str

    @property
    def eks_clusters(self) -> Path:
        """The EKS binding's `clusters.json`: each cluster's API URL, kubeconfig and nodes."""
        return self.state_dir / "eks" / "clusters.json"

    @property
    def aws_env(self) -> dict[str, str]:
        """The `AWS_*` variables that point an SDK at the emulator."""
        return client_env(self.aws)


def _sim_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        capture_output=True,
        text=True,
        timeout=CLOUD_TIMEOUT_SECONDS,
        check=False,
    )


@contextlib.contextmanager
def running_local_cloud(state_dir: Path, address_blocks: str = "160-169") -> Iterator[LocalCloud]:
    """`python -m sim up` in `state_dir` on free ports, and `down` at the end (also on failure).

    Clouds that run at once need their own `address_blocks` (FIRST-LAST of 127.N/16): the session's
    cloud takes 160-169; a test module starting another passes blocks of its own."""
    ports = {name: free_port(HOST) for name in ("aws", "eks", "alb", "alb-admin", "telemetry", "prometheus")}
    options = [item for name, port in ports.items() for item in (f"--{name}-port", str(port))]
    options += ["--eks-address-blocks", address_blocks]
    try:
        up = _sim_cli("up", "--state-dir", str(state_dir), *options)
        if up.returncode != 0:
            pytest.fail(f"`python -m sim up` failed:\n{up.stdout}{up.stderr}", pytrace=False)
        yield LocalCloud(
            state_dir,
            **{
                name: f"http://{HOST}:{ports[name]}"
                for name in ("aws", "eks", "alb", "telemetry", "prometheus")
            },
        )
    finally:
        _sim_cli("down", "--state-dir", str(state_dir))


@pytest.fixture(scope="session", name="sim")
def sim_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """The whole local cloud, started once per session on free ports and stopped at its end."""
    with running_local_cloud(tmp_path_factory.mktemp("sim-cloud")) as cloud:
        yield cloud

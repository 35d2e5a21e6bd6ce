"""The `k8s_api` fixture: the Kubernetes API emulator as a real process on a free loopback port, with a
kubeconfig for it in tmp; and `kubectl`, the real binary (1.30 preferred) bound to that kubeconfig."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sim.k8s.kubeconfig import write_kubeconfig
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.support.signals import interruptible

HOST = "127.0.0.1"
KUBECTL_CANDIDATES = ("/usr/lib/google-cloud-sdk/bin/kubectl.1.30", "kubectl.1.30", "kubectl")
KUBECTL_TIMEOUT = 30.0


@dataclass
class K8sApi:
    """A running emulator: its URL, kubeconfig and process."""

    url: str
    kubeconfig: Path
    process: ManagedProcess
    data_dir: Path


def start_k8s_api(workdir: Path, data_dir: Path | None = None, port: int | None = None) -> K8sApi:
    port = port or free_port(HOST)
    data = data_dir or workdir / "data"
    url = f"http://{HOST}:{port}"
    argv = [sys.executable, "-m", "sim.cluster", "--host", HOST, "--port", str(port), "--data-dir", str(data)]
    process = ManagedProcess("k8s-api", argv, workdir / "k8s-api.log").start()
    process.wait_ready(lambda: http_ok(f"{url}/readyz"), timeout=20)
    return K8sApi(url, write_kubeconfig(workdir / "kubeconfig", url), process, data)


@pytest.fixture
def k8s_api(tmp_path: Path) -> Iterator[K8sApi]:
    api = start_k8s_api(tmp_path)
    try:
        yield api
    finally:
        api.process.stop(grace=5)


def kubectl_binary() -> str | None:
    for candidate in KUBECTL_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class Kubectl:
    """Runs the real kubectl against one kubeconfig; every call is bounded in time."""

    def __init__(self, binary: str, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = KUBECTL_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), "--request-timeout=20s", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def __call__(self, *args: str, input: str | None = None) -> str:
        return self.run(*args, input=input).stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [self.binary, "--kubeconfig", str(self.kubeconfig), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=interruptible,
        )


@pytest.fixture
def kubectl(k8s_api: K8sApi) -> Kubectl:
    binary = kubectl_binary()
    if binary is None:
        pytest.skip("no kubectl binary on this machine")
    return Kubectl(binary, k8s_api.kubeconfig)

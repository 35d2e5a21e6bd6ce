"""The everyday local cloud, exactly as the README gives it, from a repository root with the default paths:
`python -m sim up` (state in `.sim`), `python -m containers build` (into `build/`), `pyinfra -y
inventory/local.py deploy.py`, the shop on http://127.0.0.1:8080 through the ALB, `python -m sim down`.

It runs in a copy of the repository's tracked files, so that it never meets the user's own `.sim` or
`build`; the relative default paths are the point: every path the local cloud hands to a process must be
absolute, since pods run in their images' working directories.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sim.supervisor.state import marked_processes
from tests.support.pyinfra_run import PYINFRA, REPO

pytestmark = pytest.mark.timeout(900)

#: the default ports of `python -m sim up` (AWS emulator, ALB, telemetry receiver, Prometheus)
DEFAULT_PORTS = {"aws": 4566, "alb": 8080, "telemetry": 4318, "prometheus": 9090}
#: the one non-default: other clouds of this test session have pods in 160-179
ADDRESS_BLOCKS = "180-189"


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def run(root: Path, *command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SHOPSTACK_")}
    return subprocess.run(
        command, cwd=root, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    """The repository's tracked files, as a fresh clone has them; `sim down` at the end, whatever happens."""
    busy = [f"{name} :{port}" for name, port in DEFAULT_PORTS.items() if listening(port)]
    if busy:
        pytest.skip(f"default ports in use ({', '.join(busy)}): a local cloud runs? `python -m sim down`")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    root = tmp_path / "shopstack"
    for name in filter(None, tracked):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, target)
    try:
        yield root
    finally:
        run(root, sys.executable, "-m", "sim", "down", timeout=120)


def test_up_build_deploy_shop_down_with_the_default_paths(checkout: Path) -> None:
    up = run(checkout, sys.executable, "-m", "sim", "up", "--eks-address-blocks", ADDRESS_BLOCKS)
    assert up.returncode == 0, up.stdout + up.stderr
    build = run(checkout, sys.executable, "-m", "containers", "build")
    assert build.returncode == 0, build.stderr[-3000:]
    deploy = run(checkout, str(PYINFRA), "-y", "inventory/local.py", "deploy.py", timeout=900)
    assert deploy.returncode == 0, (deploy.stdout + deploy.stderr)[-6000:]

    home = httpx.get("http://127.0.0.1:8080/", timeout=30)
    assert home.status_code == 200
    assert 'href="/product/OLJCESPC7Z"' in home.text, "the home page lists the catalog"

    state = checkout / ".sim"
    down = run(checkout, sys.executable, "-m", "sim", "down", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not list(marked_processes(state)), "a process of the cloud outlived `sim down`"
    assert not [port for port in DEFAULT_PORTS.values() if listening(port)]

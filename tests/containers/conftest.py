"""Fixtures for the image builder's tests: copies of the source tree, warm stores, real OCI tools.

Builds run against copies of the repository's services, lock files and declaration (never the real tree),
with the services that exist when the tests run. Stores are cloned by hard links so a test can build on
a warm store without fetching every wheel again.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from containers.build import Builder, BuildOptions, BuildResult
from containers.declaration import load, lock_groups
from sim.supervisor.process import ManagedProcess, free_port, http_ok

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
TOOLS = {"skopeo": "skopeo", "umoci": "umoci", "docker-registry": "docker-registry"}


def require_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (apt-get install -y {TOOLS.get(name, name)})")
    return found


def copy_project(into: Path) -> Path:
    """The parts of the repository a build reads, copied to `into` (no .git, no caches)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    into.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "services", into / "services", ignore=ignore)
    (into / "containers").mkdir()
    shutil.copy2(REPO / "containers" / "images.toml", into / "containers" / "images.toml")
    shutil.copytree(REPO / "containers" / "bases", into / "containers" / "bases", ignore=ignore)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy2(REPO / name, into / name)
    return into


def clone_store(source: Path, into: Path) -> Path:
    """A copy of a store whose files are hard links (outputs are never modified in place)."""
    shutil.copytree(source, into, copy_function=os.link, ignore=shutil.ignore_patterns(".tmp"))
    return into


def present_images(project: Path) -> list[str]:
    """The declared images whose service package exists (with a __main__.py) in `project`."""
    declaration = load(project / "containers" / "images.toml", lock_groups(project / "uv.lock"))
    return [
        spec.name
        for spec in declaration.images.values()
        if (project / "services" / spec.package / "__main__.py").is_file()
    ]


@dataclass(frozen=True)
class Workspace:
    """A project copy, a store and an output directory: one place to build in."""

    project: Path
    store: Path
    out: Path
    images: tuple[str, ...]

    def options(self, **overrides: object) -> BuildOptions:
        values: dict[str, object] = {
            "project": self.project,
            "store": self.store,
            "out": self.out,
            "only": self.images,
            "revision": "test",
            "epoch": 0,
            "jobs": 4,
        }
        values.update(overrides)
        return BuildOptions(**values)  # type: ignore[arg-type]

    def build(self, **overrides: object) -> BuildResult:
        return Builder(self.options(**overrides)).build()

    def cli(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(args, env=env, cwd=cwd)


def run_cli(
    args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m containers ARGS` with the repository's builder, in `cwd`, with exactly `env` if given."""
    environment = dict(env) if env is not None else dict(os.environ)
    environment["PYTHONPATH"] = str(REPO)
    environment.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
    return subprocess.run(
        [sys.executable, "-m", "containers", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd or REPO,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="session")
def network() -> None:
    """Wheels come from PyPI (by the lock's URLs and hashes); skip where it cannot be reached."""
    try:
        socket.create_connection(("files.pythonhosted.org", 443), timeout=5).close()
    except OSError as err:
        pytest.skip(f"PyPI (files.pythonhosted.org) is unreachable, and cold builds fetch wheels: {err}")


@pytest.fixture(scope="session")
def warm(tmp_path_factory: pytest.TempPathFactory, network: None) -> Workspace:
    """Every present image built once in a session store (the tests clone it)."""
    root = tmp_path_factory.mktemp("warm")
    project = copy_project(root / "project")
    images = tuple(present_images(project))
    if not images:
        pytest.skip("no declared service exists under services/ yet")
    workspace = Workspace(project, root / "store", root / "build", images)
    workspace.build()
    return workspace


@pytest.fixture
def workspace(warm: Workspace, tmp_path: Path) -> Workspace:
    """A fresh copy of the warm project (the session's snapshot of the services), a clone of the warm
    store, and an empty output directory."""
    project = tmp_path / "project"
    shutil.copytree(warm.project, project)
    store = clone_store(warm.store, tmp_path / "store")
    return Workspace(project, store, tmp_path / "build", warm.images)


@dataclass
class LocalRegistry:
    """A real `docker-registry` (the distribution project's registry) on loopback."""

    host: str
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def start_registry(root: Path) -> LocalRegistry:
    binary = require_tool("docker-registry")
    port = free_port(HOST)
    storage = root / "storage"
    storage.mkdir(parents=True)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {HOST}:{port}\n"
    )
    process = ManagedProcess("docker-registry", [binary, "serve", str(config)], root / "registry.log").start()
    process.wait_ready(lambda: http_ok(f"http://{HOST}:{port}/v2/"), timeout=20)
    return LocalRegistry(f"{HOST}:{port}", process)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    running = start_registry(tmp_path / "registry")
    try:
        yield running
    finally:
        running.process.stop(grace=5)


@pytest.fixture
def second_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    running = start_registry(tmp_path / "registry-2")
    try:
        yield running
    finally:
        running.process.stop(grace=5)

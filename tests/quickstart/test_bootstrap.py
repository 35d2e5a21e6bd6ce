"""The README's commands on a stock machine: `./tox` provides tox on the distribution's own Python, whose pip
refuses to install into it (PEP 668), with a fresh HOME, and on a Python without ensurepip.

Each test runs the script in a copy of the files it reads, so the checkout's own `.tox/.bootstrap` is never
touched by a test (it may be the very environment running the tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

from tests.support.pyinfra_run import REPO

pytestmark = pytest.mark.timeout(600)

FILES = ("tox", "requirements-tox.txt", "uv.lock", "pyproject.toml", "tox.ini")
SYSTEM_PYTHON = Path("/usr/bin/python3")


def externally_managed(python: Path) -> bool:
    """Whether `python` is marked as the distribution's (PEP 668): pip refuses to install into it."""
    stdlib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return (Path(stdlib) / "EXTERNALLY-MANAGED").is_file()


@pytest.fixture
def system_python() -> Path:
    if not SYSTEM_PYTHON.is_file() or not externally_managed(SYSTEM_PYTHON):
        pytest.skip(f"{SYSTEM_PYTHON} is not an externally managed (PEP 668) Python on this machine")
    return SYSTEM_PYTHON


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "shopstack"
    root.mkdir()
    for name in FILES:
        shutil.copy2(REPO / name, root / name)
    return root


def newcomer(python: Path, project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`./tox ARGS` as a newcomer runs it: `python` first on PATH, a HOME with nothing in it."""
    home = project.parent / "home"
    home.mkdir(exist_ok=True)
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("TOX", "VIRTUAL_ENV"))},
        "HOME": str(home),
        "PATH": f"{python.parent}:/usr/bin:/bin",
        **env,
    }
    return subprocess.run(
        [str(python), str(project / "tox"), *args],
        cwd=project,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_pip_install_tox_is_refused_there(system_python: Path) -> None:
    """Why the README does not say `pip install tox`: the system's pip refuses."""
    refused = subprocess.run(
        [str(system_python), "-m", "pip", "install", "--dry-run", "tox"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert refused.returncode != 0
    assert "externally-managed-environment" in refused.stderr


def test_tox_runs_on_the_system_python_with_a_fresh_home(system_python: Path, project: Path) -> None:
    first = newcomer(system_python, project, "--version")
    assert first.returncode == 0, first.stderr
    assert "installing tox into .tox/.bootstrap" in first.stderr
    assert "tox-uv" in first.stdout

    listed = newcomer(system_python, project, "-l")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["lint", "unit", "components", "local"]
    assert "installing tox" not in listed.stderr, "a complete environment is used as it is"


def test_an_environment_left_half_built_is_built_again(system_python: Path, project: Path) -> None:
    assert newcomer(system_python, project, "--version").returncode == 0
    (project / ".tox" / ".bootstrap" / "stamp").unlink()  # as if the first run had been killed mid-way
    again = newcomer(system_python, project, "--version")
    assert again.returncode == 0, again.stderr
    assert "installing tox" in again.stderr


def test_a_changed_lock_rebuilds_the_environment(system_python: Path, project: Path) -> None:
    assert newcomer(system_python, project, "--version").returncode == 0
    requirements = project / "requirements-tox.txt"
    requirements.write_text(requirements.read_text() + "\n# changed\n")
    again = newcomer(system_python, project, "--version")
    assert again.returncode == 0, again.stderr
    assert "installing tox" in again.stderr


def test_a_python_without_ensurepip_gets_the_locked_pip(project: Path, tmp_path: Path) -> None:
    """Debian's Python without `python3-venv` has no ensurepip: pip's wheel comes from uv.lock, checked."""
    shadow = tmp_path / "shadow" / "ensurepip"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no ensurepip here (python3-venv missing)')\n")
    python = Path(sysconfig.get_config_var("BINDIR")) / "python3"
    result = newcomer(python, project, "--version", PYTHONPATH=str(shadow.parent))
    assert result.returncode == 0, result.stderr
    assert "has no ensurepip; fetching pip-" in result.stderr
    assert "tox-uv" in result.stdout


def test_requirements_are_uv_lock_exported(tmp_path: Path) -> None:
    """requirements-tox.txt is exactly what `uv export` gives for the `tox` group: one lock, no drift."""
    from uv import find_uv_bin

    exported = subprocess.run(
        [find_uv_bin(), "export", "--frozen", "--only-group", "tox", "--no-emit-project", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stale = "requirements-tox.txt is stale: `uv export --frozen --only-group tox --no-emit-project --quiet`"
    assert exported == (REPO / "requirements-tox.txt").read_text(), stale

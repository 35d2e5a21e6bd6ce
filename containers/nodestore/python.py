"""The host's Python interpreter of a given major.minor, never a virtual environment's.

An image runs `python` with its own site-packages on PYTHONPATH; a venv's interpreter would add the
venv's packages (the source tree's dependencies) behind them, so a venv is followed to its base.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

SEARCH_DIRS = ("/usr/local/bin", "/usr/bin")


def base_interpreter(executable: Path) -> Path:
    """`executable`, or, if it belongs to a virtual environment, the interpreter the venv was made from."""
    real = executable.resolve()
    config = executable.parent.parent / "pyvenv.cfg"
    if not config.is_file():
        return real
    for line in config.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            candidate = Path(value.strip()) / real.name
            if candidate.exists():
                return candidate.resolve()
    return real


@cache
def host_python(version: str) -> Path | None:
    """The host interpreter for `version` ("3.11"), or None when the host has none."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        base = getattr(sys, "_base_executable", sys.executable)
        return Path(base).resolve()
    candidates = [shutil.which(f"python{version}")]
    candidates += [os.path.join(d, f"python{version}") for d in SEARCH_DIRS]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            path = base_interpreter(Path(candidate))
            if _reports(path, version):
                return path
    return None


def _reports(path: Path, version: str) -> bool:
    try:
        out = subprocess.run(
            [str(path), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == version


def host_versions() -> list[str]:
    """The major.minor versions found on the host, for error messages."""
    found = {f"{sys.version_info.major}.{sys.version_info.minor}"}
    for directory in SEARCH_DIRS:
        for entry in Path(directory).glob("python3.*"):
            suffix = entry.name.removeprefix("python")
            if suffix.count(".") == 1 and suffix.replace(".", "").isdigit():
                found.add(suffix)
    return sorted(found)

"""The locked dependency set of a group, for the target: which wheel of which version, by hash.

uv resolves the group's closure from uv.lock (`uv export --frozen`: no resolution, no network); its
markers are evaluated for the declared target, not for the build host; then, for each pinned package,
the best wheel for the target's tags is taken from uv.lock with its URL and sha256. A package the lock
has no suitable wheel for fails the build: images install wheels only, never build from source.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.utils import canonicalize_name, parse_wheel_filename

from containers.declaration import PROJECT_GROUP
from containers.errors import ContainersError
from containers.platform import Target


@dataclass(frozen=True)
class LockedWheel:
    name: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "filename": self.filename,
            "url": self.url,
            "sha256": self.sha256,
            "size": self.size,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockedWheel:
        return cls(
            data["name"], data["version"], data["filename"], data["url"], data["sha256"], int(data["size"])
        )


def uv_binary() -> str:
    """The uv of the project's own environment (the `images` group pins it), else one on PATH."""
    try:
        from uv import find_uv_bin
    except ImportError:
        found = shutil.which("uv")
    else:
        found = find_uv_bin()
    if found is None:
        raise ContainersError(
            "uv is not installed: it exports the locked dependency set; use the project's environment "
            "(`uv sync --group images`, or tox's) or put uv 0.13+ on PATH"
        )
    return found


def uv_version(uv: str) -> str:
    result = subprocess.run([uv, "--version"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ContainersError(f"{uv} --version failed: {result.stderr.strip()}")
    return result.stdout.split()[1]


def export_requirements(uv: str, project: Path, group: str, kind: str) -> list[tuple[str, str, str]]:
    """(name, version, marker) of each package the group needs, from uv.lock, without the project itself."""
    command = [
        uv,
        "export",
        "--frozen",
        "--no-config",
        "--no-emit-project",
        "--no-default-groups",
        "--no-hashes",
        "--no-header",
        "--no-annotate",
        "--format",
        "requirements.txt",
        "--project",
        str(project),
    ]
    if group != PROJECT_GROUP:
        command += ["--extra" if kind == "extra" else "--group", group]
    env = {key: value for key, value in os.environ.items() if not key.startswith("UV_")}
    env["UV_NO_PROGRESS"] = "1"
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=project)
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or ["no output"])[0]
        raise ContainersError(f"uv export of group {group!r} failed: {first}")
    pins = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        requirement, _, marker = line.partition(";")
        name, separator, version = requirement.strip().partition("==")
        if not separator:
            raise ContainersError(
                f"uv export: {line!r} is not pinned (path or URL dependencies are not supported)"
            )
        pins.append((name.strip(), version.strip(), marker.strip()))
    return pins


def select_wheels(pins: list[tuple[str, str, str]], lock_file: Path, target: Target) -> list[LockedWheel]:
    """The wheel of each pin that applies to the target, preferring the most specific tag."""
    with lock_file.open("rb") as stream:
        lock = tomllib.load(stream)
    packages = {(canonicalize_name(p["name"]), p["version"]): p for p in lock.get("package", [])}
    chosen = []
    for name, version, marker in pins:
        if marker and not Marker(marker).evaluate(dict(target.markers)):
            continue
        package = packages.get((canonicalize_name(name), version))
        if package is None:
            raise ContainersError(f"uv.lock has no entry for {name}=={version}: run `uv lock`")
        chosen.append(_best_wheel(package, target))
    return sorted(chosen, key=lambda wheel: wheel.name)


def _best_wheel(package: Mapping[str, Any], target: Target) -> LockedWheel:
    best: tuple[int, Mapping[str, Any]] | None = None
    for wheel in package.get("wheels", []):
        filename = wheel["url"].rsplit("/", 1)[-1]
        _name, _version, _build, tags = parse_wheel_filename(filename)
        ranks = [target.tag_priority[tag] for tag in tags if tag in target.tag_priority]
        if ranks and (best is None or min(ranks) < best[0]):
            best = (min(ranks), wheel)
    if best is None:
        raise ContainersError(
            f"uv.lock: {package['name']} {package['version']} has no wheel for {target} "
            "(images install wheels only)"
        )
    wheel = best[1]
    algorithm, _, digest = str(wheel["hash"]).partition(":")
    if algorithm != "sha256":
        raise ContainersError(f"uv.lock: {package['name']} wheel hash is {algorithm}, not sha256")
    return LockedWheel(
        name=str(canonicalize_name(package["name"])),
        version=package["version"],
        filename=wheel["url"].rsplit("/", 1)[-1],
        url=wheel["url"],
        sha256=digest,
        size=int(wheel.get("size", 0)),
    )

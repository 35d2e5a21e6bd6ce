"""What a container runtime needs to start an image: argv, env, working dir, user, rootfs (a model).

The image's own paths are rewritten to where its layers are unpacked: an absolute path (in argv, in a
PATH-like variable, the working dir) whose first components exist in the rootfs becomes the same path
under the rootfs; paths the image does not hold (/usr/bin in PATH) stay the host's. `python` (and
`python3`, `pythonX.Y`) as the program is the host's interpreter of the image's declared major.minor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from containers.nodestore.errors import ImageError

PYTHON_LABEL = "io.shopstack.python"
PATH_VARIABLES = ("PATH", "PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH")


@dataclass(frozen=True)
class RunSpec:
    """One image, ready to run: `argv` and `env` already point into `rootfs`."""

    reference: str
    digest: str
    argv: list[str]
    env: dict[str, str]
    working_dir: Path
    user: str | None
    rootfs: Path
    python: Path | None
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)
    mounts: dict[str, str] = field(default_factory=dict)

    def with_mounts(self, mounts: Mapping[str, Path]) -> RunSpec:
        """This image with volumes mounted: a mount path (and what is below it) is the host directory."""
        return replace(self, mounts={path.rstrip("/") or "/": str(host) for path, host in mounts.items()})

    def command(self, command: Sequence[str] | None, args: Sequence[str] | None) -> list[str]:
        """The argv of a container, as Kubernetes combines its `command`/`args` with the image's."""
        if command:
            return self.rewrite_argv([*command, *(args or [])])
        return self.rewrite_argv([*self.entrypoint, *(self.cmd if args is None else args)])

    def path(self, value: str) -> str:
        """An absolute path of the container, here: under a mount's host directory, else where the image
        is unpacked; a path neither holds is unchanged (the host's)."""
        for mount in sorted(self.mounts, key=len, reverse=True):
            if value == mount or value.startswith(mount + "/"):
                return self.mounts[mount] + value[len(mount) :]
        return _rewrite_path(value, self.rootfs)

    def env_value(self, name: str, value: str) -> str:
        """A variable's value with its path (or, for PATH-like variables, its paths) translated."""
        if name in PATH_VARIABLES:
            return ":".join(self.path(p) for p in value.split(":"))
        return self.path(value)

    def rewrite_argv(self, argv: Sequence[str]) -> list[str]:
        """An argv written for the image, runnable here (its python and image paths translated).

        A program of the image that is a Python script (a console script such as `hypercorn`, whose
        shebang names the image's interpreter) runs with the host's Python.
        """
        if not argv:
            return []
        rest = [self.path(a) for a in argv[1:]]
        if _is_python(argv[0]):
            return [str(self._python(argv[0])), *rest]
        program = self._find_program(argv[0])
        if program is None:
            return [self.path(argv[0]), *rest]
        if _python_script(program):
            return [str(self._python(argv[0])), str(program), *rest]
        return [str(program), *rest]

    def _python(self, program: str) -> Path:
        if self.python is None:
            raise ImageError(f"{self.reference}: runs {program} but declares no {PYTHON_LABEL} label")
        return self.python

    def _find_program(self, program: str) -> Path | None:
        """`program` in the image: an absolute path under the rootfs, or a name on the image's PATH."""
        if "/" in program:
            candidate = Path(self.path(program)) if program.startswith("/") else None
            return candidate if candidate is not None and candidate.is_file() else None
        for directory in self.env.get("PATH", "").split(":"):
            if directory.startswith(str(self.rootfs)) and (Path(directory) / program).is_file():
                return Path(directory) / program
        return None


def _is_python(program: str) -> bool:
    name = PurePosixPath(program).name
    return name in ("python", "python3") or (name.startswith("python3.") and name[8:].isdigit())


def _python_script(path: Path) -> bool:
    """Whether `path` starts with a shebang naming a Python interpreter (directly or through env)."""
    try:
        with path.open("rb") as stream:
            first = stream.readline(256)
    except OSError:
        return False
    if not first.startswith(b"#!"):
        return False
    words = first[2:].decode(errors="replace").split()
    if words and PurePosixPath(words[0]).name == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
    return bool(words) and _is_python(words[0])


def _rewrite_path(value: str, rootfs: Path) -> str:
    """`value` under `rootfs` if it is an absolute path the image holds, else unchanged."""
    if not value.startswith("/") or value == "/":
        return value
    parts = PurePosixPath(value).parts[1:]
    if os.path.lexists(rootfs / parts[0]):
        return str(rootfs.joinpath(*parts))
    return value


def build_runspec(
    reference: str,
    digest: str,
    config: Mapping[str, Any],
    rootfs: Path,
    find_python: Callable[[str], Path | None],
    host_versions: Callable[[], list[str]],
) -> RunSpec:
    """The RunSpec of an image from its OCI config (`config` is the config blob's `config` object)."""
    labels = dict(config.get("Labels") or {})
    entrypoint = list(config.get("Entrypoint") or [])
    cmd = list(config.get("Cmd") or [])
    python = None
    if version := labels.get(PYTHON_LABEL):
        python = find_python(version)
        if python is None:
            raise ImageError(
                f"{reference}: the image needs Python {version} (label {PYTHON_LABEL}) "
                f"but this host has Python {', '.join(host_versions())}"
            )
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        if key in PATH_VARIABLES:
            value = ":".join(_rewrite_path(p, rootfs) for p in value.split(":"))
        env[key] = value
    working_dir = Path(_rewrite_path(str(config.get("WorkingDir") or "/"), rootfs))
    if str(working_dir) == "/":
        working_dir = rootfs
    spec = RunSpec(
        reference=reference,
        digest=digest,
        argv=[],
        env=env,
        working_dir=working_dir,
        user=config.get("User") or None,
        rootfs=rootfs,
        python=python,
        entrypoint=entrypoint,
        cmd=cmd,
        labels=labels,
        exposed_ports=sorted(config.get("ExposedPorts") or {}),
    )
    return replace(spec, argv=spec.command(None, None))

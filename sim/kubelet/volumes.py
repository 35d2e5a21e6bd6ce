"""A pod's volumes on the host: ConfigMap, Secret and emptyDir, written as a kubelet writes them.

A ConfigMap or Secret volume is a directory whose entries are symlinks `<key> -> ..data/<key>`, with
`..data` a symlink to a timestamped directory holding the files. An update writes a new timestamped
directory and swaps `..data` with one rename, so a reader sees the old set of files or the new one,
never a mix; this is how services notice a changed flags file. The container sees a volume at its
mountPath through the path translation of `RunSpec.with_mounts` (there is no mount namespace).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from sim.kubelet.spec import ConfigError, ConfigSource, Mount, Volume

DATA = "..data"


def _safe_relative(path: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or ".." in parts:
        raise ConfigError(f"volume item path {path!r} must be relative, without '..'")
    return path


class PodVolumes:
    """The volumes of one pod under `root` (one directory per volume)."""

    def __init__(
        self, root: Path, volumes: list[Volume], namespace: str, config: ConfigSource | None
    ) -> None:
        self.root = root
        self.volumes = {v.name: v for v in volumes}
        self.namespace = namespace
        self.config = config

    def write_all(self) -> None:
        """Write (or update in place) every volume; `ConfigError` for a missing non-optional source."""
        for volume in self.volumes.values():
            self.write(volume)

    def write(self, volume: Volume) -> None:
        directory = self.root / volume.name
        if volume.kind == "emptyDir":
            directory.mkdir(parents=True, exist_ok=True)
            return
        data = self.config.data(volume.kind, self.namespace, volume.source) if self.config else None
        if data is None and not volume.optional:
            raise ConfigError(f"{volume.kind.lower()} {volume.source!r} not found (volume {volume.name})")
        source = data or {}
        files = {_safe_relative(path): source[key] for key, path in volume.items if key in source}
        if not volume.items:
            files = {_safe_relative(key): value for key, value in source.items()}
        directory.mkdir(parents=True, exist_ok=True)
        current = directory / DATA
        if current.exists() and self._same(current, files):
            return
        version = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
        for path, value in files.items():
            (version / path).parent.mkdir(parents=True, exist_ok=True)
            (version / path).write_text(value)
        version.mkdir(exist_ok=True)
        previous = os.readlink(current) if current.is_symlink() else None
        swap = directory / "..data_tmp"
        swap.unlink(missing_ok=True)
        os.symlink(version.name, swap)
        os.replace(swap, current)
        tops = {PurePosixPath(p).parts[0] for p in files}
        for top in tops:
            link = directory / top
            if not link.is_symlink():
                os.symlink(f"{DATA}/{top}", link)
        for entry in directory.iterdir():
            if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in tops:
                entry.unlink()  # a key the new version no longer has
        if previous:
            shutil.rmtree(directory / previous, ignore_errors=True)

    @staticmethod
    def _same(current: Path, files: Mapping[str, str]) -> bool:
        existing = {
            str(p.relative_to(current.resolve())) for p in current.resolve().rglob("*") if p.is_file()
        }
        if existing != set(files):
            return False
        return all((current / path).read_text() == value for path, value in files.items())

    def mounts(self, mounts: list[Mount]) -> dict[str, Path]:
        """Mount path -> host path, for a container's volumeMounts."""
        found: dict[str, Path] = {}
        for mount in mounts:
            if mount.volume not in self.volumes:
                raise ConfigError(f"volumeMount {mount.mount_path}: no volume named {mount.volume!r}")
            host = self.root / mount.volume
            found[mount.mount_path] = host / _safe_relative(mount.sub_path) if mount.sub_path else host
        return found

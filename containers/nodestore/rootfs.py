"""An image's root filesystem: its unpacked layers merged as a tree of symlinks, like an overlay mount.

Each layer is unpacked once into the layer cache; an image's rootfs is a small directory in which a
subtree that only one layer provides is a symlink into that layer's cache directory, and a directory
that several layers provide is a real directory merged entry by entry. Upper layers win; OCI whiteouts
(`.wh.<name>` hides `<name>` of the layers below, `.wh..wh..opq` hides a whole directory below) are
honoured. For the shop's images (dependencies under /opt, code under /app) the rootfs is two symlinks, so
a container's files are the layer cache's files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def merge_layers(layers: list[Path], into: Path) -> Path:
    """Build the merged tree of `layers` (bottom first) at `into`, atomically; return `into`."""
    if into.is_dir():
        return into
    into.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{into.name}.", dir=into.parent))
    staging.chmod(0o755)
    try:
        _merge_dir([layer for layer in layers if layer.is_dir()], staging)
        try:
            staging.rename(into)
        except OSError:
            if not into.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return into


def _merge_dir(sources: list[Path], into: Path) -> None:
    """Merge directories `sources` (bottom first) into the real directory `into`."""
    entries: dict[str, list[Path]] = {}
    for source in sources:
        names = sorted(os.listdir(source))
        if OPAQUE in names:
            entries.clear()
        for name in names:
            if name == OPAQUE:
                continue
            if name.startswith(WHITEOUT):
                entries.pop(name[len(WHITEOUT) :], None)
                continue
            path = source / name
            below = entries.get(name)
            if below and _real_dir(path) and all(_real_dir(p) for p in below):
                below.append(path)
            else:
                entries[name] = [path]
    for name, paths in sorted(entries.items()):
        if len(paths) == 1:
            os.symlink(paths[0], into / name)
        else:
            (into / name).mkdir()
            _merge_dir(paths, into / name)


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()

"""Reproducible layer tarballs: the same tree gives the same bytes on any machine, at any time.

Entries are sorted by path (every parent directory present before its children), owned by 0:0 with no
user or group names, stamped with one fixed mtime (SOURCE_DATE_EPOCH), with modes normalised to 0755 for
directories and executables and 0644 for other files. The gzip stream has no file name and a zero
timestamp. A layer's `diff_id` is the sha256 of the tar, its `digest` that of the gzip stream; both are
computed while writing.

The compressed bytes also depend on the zlib that deflates them, so zlib's version is an input of every
layer derivation: two machines with different zlib builds get different keys rather than silently
different blobs (the uncompressed `diff_id` is the same on both).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from containers.errors import ContainersError
from containers.hashing import walk

COMPRESS_LEVEL = 6
ZLIB_VERSION = zlib.ZLIB_RUNTIME_VERSION


@dataclass(frozen=True)
class LayerInfo:
    """The two digests and the size a layer's descriptor and its image config need."""

    digest: str
    diff_id: str
    size: int
    entries: int

    def to_json(self) -> dict[str, str | int]:
        return {"digest": self.digest, "diff_id": self.diff_id, "size": self.size, "entries": self.entries}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> LayerInfo:
        return cls(
            str(data["digest"]), str(data["diff_id"]), int(str(data["size"])), int(str(data["entries"]))
        )


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to `target` (if any)."""

    def __init__(self, target: BinaryIO | None) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self.digest.update(view)
        self.size += view.nbytes
        if self.target is not None:
            self.target.write(view)
        return view.nbytes


@dataclass(frozen=True)
class Entry:
    """One tar entry: a directory (source None), a file or a symlink, by its path inside the layer."""

    source: Path | None
    kind: str


class LayerTree:
    """The merged file tree of a layer: paths inside the image mapped to files on disk."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def add_tree(self, root: Path, prefix: str) -> None:
        """Add everything under `root` at `prefix` (a relative POSIX path inside the image)."""
        self.add_directory(prefix)
        for relative, path, info in walk(root):
            target = f"{prefix}/{relative}" if prefix else relative
            if stat.S_ISDIR(info.st_mode):
                self.add_directory(target)
            elif stat.S_ISREG(info.st_mode):
                self.add_file(target, path, executable=bool(info.st_mode & 0o111))
            elif stat.S_ISLNK(info.st_mode):
                self._put(target, Entry(path, "symlink"))
            else:
                raise ContainersError(f"layer: {path} is neither a file, a directory nor a symlink")

    def add_directory(self, target: str) -> None:
        parts = PurePosixPath(target).parts
        for depth in range(1, len(parts) + 1):
            self._put("/".join(parts[:depth]), Entry(None, "dir"))

    def add_file(self, target: str, source: Path, *, executable: bool = False) -> None:
        parent = PurePosixPath(target).parent.as_posix()
        if parent != ".":
            self.add_directory(parent)
        self._put(target, Entry(source, "exe" if executable else "file"))

    def _put(self, target: str, entry: Entry) -> None:
        if target.startswith("/") or ".." in PurePosixPath(target).parts:
            raise ContainersError(f"layer: path {target!r} escapes the image root")
        known = self.entries.get(target)
        if known is None:
            self.entries[target] = entry
        elif known.kind != entry.kind or (
            entry.source is not None
            and known.source is not None
            and entry.kind != "symlink"
            and known.source.read_bytes() != entry.source.read_bytes()
        ):
            raise ContainersError(
                f"layer: two different files at /{target} ({known.source} and {entry.source})"
            )

    def write(self, out: Path, mtime: int) -> LayerInfo:
        """Write the tree as a reproducible tar.gz at `out`."""
        with out.open("wb") as raw:
            compressed = _HashingWriter(raw)  # type: ignore[arg-type]
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=COMPRESS_LEVEL
            ) as gz:
                uncompressed = _HashingWriter(gz)  # type: ignore[arg-type]
                with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                    for target in sorted(self.entries, key=str.encode):
                        self._write_entry(tar, target, self.entries[target], mtime)
        return LayerInfo(
            digest=f"sha256:{compressed.digest.hexdigest()}",
            diff_id=f"sha256:{uncompressed.digest.hexdigest()}",
            size=compressed.size,
            entries=len(self.entries),
        )

    @staticmethod
    def _write_entry(tar: tarfile.TarFile, target: str, entry: Entry, mtime: int) -> None:
        info = tarfile.TarInfo(target)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = mtime
        if entry.kind == "dir":
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        elif entry.kind == "symlink":
            assert entry.source is not None
            info.type = tarfile.SYMTYPE
            info.mode = 0o777
            info.linkname = os.readlink(entry.source)
            tar.addfile(info)
        else:
            assert entry.source is not None
            info.type = tarfile.REGTYPE
            info.mode = 0o755 if entry.kind == "exe" else 0o644
            info.size = entry.source.stat().st_size
            with entry.source.open("rb") as content:
                tar.addfile(info, content)

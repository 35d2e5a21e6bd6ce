"""Unpack one layer blob into a directory, safely and atomically, checking both of its digests.

Safety: every member name must be relative with no `..` component; only regular files, directories,
symlinks and hard links are extracted (device files, FIFOs and the like are refused); a hard link must
point at an earlier member; nothing is ever written through a symlink (parents are real directories
made here, files are opened with O_NOFOLLOW | O_EXCL). Symlink targets are kept as written: inside a
container they resolve against its root, and here nothing follows them while unpacking.

Atomicity: the layer is unpacked into a temporary sibling directory, which is renamed into place only
once the compressed digest and the uncompressed diff_id both match. A concurrent unpack of the same
layer loses the rename race harmlessly.

Unpacked regular files lose their write bits: the cache is shared by every container of every image.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO

from containers.nodestore.errors import ImageError

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
TAR = "application/vnd.oci.image.layer.v1.tar"
CHUNK = 1 << 20


class HashingReader:
    """A read-only stream that hashes what passes through it (for the diff_id of a compressed layer)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.hash.update(data)
        return data

    def drain(self) -> str:
        while self.read(CHUNK):
            pass
        return "sha256:" + self.hash.hexdigest()


def file_digest(path: Path) -> str:
    with path.open("rb") as stream:
        return "sha256:" + hashlib.file_digest(stream, "sha256").hexdigest()


def safe_parts(name: str) -> tuple[str, ...]:
    """The path components of a member name; raise `ImageError` for an absolute or escaping name."""
    if name.startswith("/"):
        raise ImageError(f"layer member {name!r}: absolute path")
    parts = tuple(p for p in PurePosixPath(name).parts if p != ".")
    if ".." in parts:
        raise ImageError(f"layer member {name!r}: '..' in path")
    return parts


def unpack_layer(blob: Path, media_type: str, digest: str, diff_id: str | None, into: Path) -> Path:
    """Unpack `blob` to `into` (if not there already) and return `into`."""
    if into.is_dir():
        return into
    if media_type not in (GZIP, DOCKER_GZIP, TAR):
        raise ImageError(f"layer {digest}: unsupported media type {media_type}")
    if (actual := file_digest(blob)) != digest:
        raise ImageError(f"layer {digest}: blob is corrupt (its sha256 is {actual})")
    into.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{into.name}.", dir=into.parent))
    staging.chmod(0o755)
    try:
        with blob.open("rb") as raw:
            stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if media_type != TAR else raw  # type: ignore[assignment]
            reader = HashingReader(stream)
            made: set[tuple[str, ...]] = {()}
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    _extract(tar, member, staging, made)
            uncompressed = reader.drain()
        if diff_id is not None and uncompressed != diff_id:
            raise ImageError(f"layer {digest}: diff_id is {uncompressed}, the image config says {diff_id}")
        try:
            staging.rename(into)
        except OSError:
            if not into.is_dir():
                raise
    except (OSError, tarfile.TarError, EOFError) as err:
        raise ImageError(f"layer {digest}: cannot unpack: {err}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return into


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, made: set[tuple[str, ...]]) -> None:
    """Extract one member; `made` holds the directories this unpack made (so known to be real)."""
    parts = safe_parts(member.name)
    if not parts:
        return
    for depth in range(1, len(parts)):
        if parts[:depth] in made:
            continue
        parent = root.joinpath(*parts[:depth])
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            raise ImageError(f"layer member {member.name!r}: a parent is not a directory")
        parent.mkdir(mode=0o755, exist_ok=True)
        made.add(parts[:depth])
    target = root.joinpath(*parts)
    if member.isdir():
        if parts not in made:
            if target.is_symlink():
                raise ImageError(f"layer member {member.name!r}: replaces a symlink with a directory")
            target.mkdir(mode=0o755, exist_ok=True)
            made.add(parts)
        return
    if parts in made:  # a file or link replaces a directory made earlier in this layer
        made.difference_update({p for p in made if p[: len(parts)] == parts})
    if target.is_symlink() or target.exists():
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    if member.issym():
        os.symlink(member.linkname, target)
    elif member.islnk():
        source = root.joinpath(*safe_parts(member.linkname))
        if source.is_symlink() or not source.is_file():
            raise ImageError(f"layer member {member.name!r}: hard link to a missing or non-file member")
        os.link(source, target)
    elif member.isreg():
        source_stream = tar.extractfile(member)
        assert source_stream is not None
        mode = (member.mode & 0o555) | stat.S_IRUSR
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source_stream, out, CHUNK)
        os.chmod(target, mode)
    else:
        raise ImageError(f"layer member {member.name!r}: refused type {member.type!r} (device, FIFO...)")

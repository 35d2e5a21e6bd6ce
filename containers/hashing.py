"""Content hashes: canonical JSON, files, and whole trees (the store's NAR hash, in spirit).

A tree's hash covers each entry's relative POSIX path, its kind (file, executable file, symlink,
directory) and its content, in sorted order; never timestamps, owners or the tree's own location, so the
same output built in two places hashes the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no insignificant whitespace: the bytes that get hashed or stored."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def walk(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Every entry under `root` (not `root` itself) as (relative POSIX path, path, lstat), sorted by path."""
    entries: list[tuple[str, Path, os.stat_result]] = []
    stack = [root]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as scan:
            for entry in scan:
                path = Path(entry.path)
                info = entry.stat(follow_symlinks=False)
                entries.append((path.relative_to(root).as_posix(), path, info))
                if stat.S_ISDIR(info.st_mode):
                    stack.append(path)
    entries.sort(key=lambda item: item[0].encode())
    yield from entries


def tree_hash(root: Path) -> str:
    """The hash of a file or directory tree's content and shape (not its timestamps or owners)."""
    digest = hashlib.sha256()
    if root.is_file():
        digest.update(b"file\0" + sha256_file(root).encode())
        return digest.hexdigest()
    for relative, path, info in walk(root):
        if stat.S_ISDIR(info.st_mode):
            record = f"dir\0{relative}\0"
        elif stat.S_ISLNK(info.st_mode):
            record = f"link\0{relative}\0{os.readlink(path)}\0"
        elif stat.S_ISREG(info.st_mode):
            kind = "exe" if info.st_mode & 0o111 else "file"
            record = f"{kind}\0{relative}\0{sha256_file(path)}\0"
        else:
            raise ValueError(f"{path}: only files, directories and symlinks can be hashed")
        digest.update(record.encode())
    return digest.hexdigest()


def files_hash(entries: Iterable[tuple[str, bool, str]]) -> str:
    """The hash of a set of regular files given as (relative path, executable, sha256 of content)."""
    digest = hashlib.sha256()
    for relative, executable, content in sorted(entries, key=lambda entry: entry[0].encode()):
        digest.update(f"{'exe' if executable else 'file'}\0{relative}\0{content}\0".encode())
    return digest.hexdigest()


def files_hash_of_tree(root: Path) -> str:
    """`files_hash` of the regular files under `root` (directories count only through their files)."""
    entries = []
    for relative, path, info in walk(root):
        if stat.S_ISREG(info.st_mode):
            entries.append((relative, bool(info.st_mode & 0o111), sha256_file(path)))
        elif not stat.S_ISDIR(info.st_mode):
            raise ValueError(f"{path}: a source tree holds only files and directories")
    return files_hash(entries)

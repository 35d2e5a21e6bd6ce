"""Reproducible layer tarballs: same tree, same bytes, whatever the file system says about it."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from containers.errors import ContainersError
from containers.tarball import LayerTree


def make_tree(root: Path, order: list[str], mode: int, mtime: int) -> Path:
    contents = {
        "pkg/__init__.py": b"",
        "pkg/data/catalog.json": b"{}",
        "pkg/tool": b"#!/bin/sh\n",
        "a-b.txt": b"x",
    }
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contents[name])
        path.chmod(mode | (0o111 if name.endswith("tool") else 0))
        os.utime(path, (mtime, mtime))
    return root


def layer_bytes(root: Path, out: Path, epoch: int = 0) -> tuple[bytes, str]:
    tree = LayerTree()
    tree.add_tree(root, "app")
    info = tree.write(out, epoch)
    return out.read_bytes(), info.digest


def test_the_same_tree_gives_the_same_bytes_whatever_its_order_modes_and_times(tmp_path: Path) -> None:
    names = ["pkg/__init__.py", "pkg/data/catalog.json", "pkg/tool", "a-b.txt"]
    one = make_tree(tmp_path / "one", names, 0o600, 1_000_000)
    two = make_tree(tmp_path / "two", list(reversed(names)), 0o664, 2_000_000_000)
    first, digest = layer_bytes(one, tmp_path / "one.tar.gz")
    second, _ = layer_bytes(two, tmp_path / "two.tar.gz")
    assert first == second
    assert digest == "sha256:" + hashlib.sha256(first).hexdigest()


def test_entries_are_sorted_owned_by_root_stamped_with_the_epoch_and_modes_normalised(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path / "t", ["pkg/tool", "pkg/__init__.py", "pkg/data/catalog.json", "a-b.txt"], 0o600, 5
    )
    data, _ = layer_bytes(root, tmp_path / "l.tar.gz", epoch=1_700_000_000)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
    names = [member.name for member in members]
    assert names == sorted(names, key=str.encode)
    assert names[:2] == ["app", "app/a-b.txt"]
    assert "app/pkg" in names
    assert names.index("app/pkg") < names.index("app/pkg/__init__.py")
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 1_700_000_000)}
    modes = {m.name: m.mode for m in members}
    assert modes["app/pkg"] == 0o755
    assert modes["app/pkg/tool"] == 0o755
    assert modes["app/pkg/__init__.py"] == 0o644


def test_gzip_has_no_name_and_no_timestamp(tmp_path: Path) -> None:
    data, _ = layer_bytes(make_tree(tmp_path / "t", ["a-b.txt"], 0o644, 9), tmp_path / "l.tar.gz")
    flags, mtime = data[3], int.from_bytes(data[4:8], "little")
    assert data[:3] == b"\x1f\x8b\x08"
    assert flags == 0
    assert mtime == 0
    assert gzip.decompress(data)


def test_diff_id_is_the_digest_of_the_uncompressed_tar(tmp_path: Path) -> None:
    tree = LayerTree()
    tree.add_tree(make_tree(tmp_path / "t", ["a-b.txt"], 0o644, 9), "")
    info = tree.write(tmp_path / "l.tar.gz", 0)
    assert (
        info.diff_id
        == "sha256:" + hashlib.sha256(gzip.decompress((tmp_path / "l.tar.gz").read_bytes())).hexdigest()
    )
    assert info.size == (tmp_path / "l.tar.gz").stat().st_size


def test_two_different_files_at_one_path_are_refused(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "x").write_text("1")
    (tmp_path / "two" / "x").write_text("2")
    tree = LayerTree()
    tree.add_tree(tmp_path / "one", "")
    with pytest.raises(ContainersError, match="two different files at /x"):
        tree.add_tree(tmp_path / "two", "")

"""Pod volumes on the host: the kubelet's `..data` layout, items, updates in place, mount translation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sim.kubelet.spec import ConfigError, Mount, Volume
from sim.kubelet.volumes import PodVolumes


class Config:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, str]] = {}

    def data(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        return self.objects.get((kind, name))


def test_config_map_volumes_are_written_and_swapped_atomically(tmp_path: Path) -> None:
    config = Config()
    config.objects[("ConfigMap", "flags")] = {"flags.json": "1", "extra": "x"}
    volumes = PodVolumes(tmp_path, [Volume("flags", "ConfigMap", "flags")], "shop", config)
    volumes.write_all()
    directory = tmp_path / "flags"
    assert os.readlink(directory / "flags.json") == "..data/flags.json"
    assert (directory / "flags.json").read_text() == "1"
    first = os.readlink(directory / "..data")
    volumes.write_all()
    assert os.readlink(directory / "..data") == first  # unchanged data: nothing rewritten

    config.objects[("ConfigMap", "flags")] = {"flags.json": "2"}
    volumes.write_all()
    assert (directory / "flags.json").read_text() == "2"
    assert os.readlink(directory / "..data") != first
    assert not (directory / first).exists()
    assert not (directory / "extra").is_symlink()  # a key that went away is gone


def test_items_secrets_empty_dirs_and_sub_paths(tmp_path: Path) -> None:
    config = Config()
    config.objects[("Secret", "card")] = {"key": "s3cret", "other": "no"}
    volumes = [Volume("card", "Secret", "card", (("key", "keys/card.key"),)), Volume("scratch", "emptyDir")]
    pod_volumes = PodVolumes(tmp_path, volumes, "shop", config)
    pod_volumes.write_all()
    assert (tmp_path / "card" / "keys" / "card.key").read_text() == "s3cret"
    assert not (tmp_path / "card" / "other").exists()
    assert (tmp_path / "scratch").is_dir()
    mounts = pod_volumes.mounts([Mount("card", "/etc/card"), Mount("scratch", "/tmp/data", "sub")])
    assert mounts == {"/etc/card": tmp_path / "card", "/tmp/data": tmp_path / "scratch" / "sub"}
    with pytest.raises(ConfigError, match="no volume named"):
        pod_volumes.mounts([Mount("absent", "/x")])


def test_unsafe_item_paths_and_missing_sources_are_config_errors(tmp_path: Path) -> None:
    config = Config()
    config.objects[("ConfigMap", "c")] = {"k": "v"}
    with pytest.raises(ConfigError, match=r"without '\.\.'"):
        PodVolumes(
            tmp_path, [Volume("c", "ConfigMap", "c", (("k", "../escape"),))], "shop", config
        ).write_all()
    with pytest.raises(ConfigError, match="not found"):
        PodVolumes(tmp_path, [Volume("m", "ConfigMap", "missing")], "shop", config).write_all()
    PodVolumes(tmp_path, [Volume("o", "ConfigMap", "missing", optional=True)], "shop", config).write_all()
    assert (tmp_path / "o").is_dir()

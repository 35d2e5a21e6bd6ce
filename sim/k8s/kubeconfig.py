"""Kubeconfig files for the emulator: plain HTTP on loopback, no credentials."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


def kubeconfig(server: str, name: str = "shopstack-local", namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server}}],
        "users": [{"name": name, "user": {"token": "shopstack-local"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(
    path: Path, server: str, name: str = "shopstack-local", namespace: str = "default"
) -> Path:
    """Write the kubeconfig atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(kubeconfig(server, name, namespace), sort_keys=False))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path

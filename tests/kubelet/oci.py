"""Small OCI image layouts written by hand, for the image store's edge cases (bad layers, labels)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Entry = tuple[str, bytes | None, str]  # (name, content or None for a directory, type: "f" "d" "l" "s" "c")


def layer_bytes(entries: Sequence[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    """A tar layer of `entries`: (name, content) for files, or ready TarInfo objects."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size, info.mode = len(entry[1]), 0o644
                tar.addfile(info, io.BytesIO(entry[1]))
    return raw.getvalue()


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_layout(
    layout: Path,
    layers: Sequence[bytes],
    config: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """An OCI layout at `layout` with one `app` manifest over `layers` (tars); its manifest digest."""
    diff_ids = [f"sha256:{hashlib.sha256(tar).hexdigest()}" for tar in layers]
    layer_descriptors = [
        {
            **_blob(layout, gzip.compress(tar, mtime=0)),
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        }
        for tar in layers
    ]
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["python", "-m", "main"],
            "Env": ["PATH=/usr/bin:/bin", "PYTHONPATH=/app"],
            "WorkingDir": "/app",
            "Labels": {"io.shopstack.python": "3.11", **(labels or {})},
            **(config or {}),
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_descriptor = {
        **_blob(layout, json.dumps(image_config).encode()),
        "mediaType": "application/vnd.oci.image.config.v1+json",
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_descriptor,
        "layers": layer_descriptors,
    }
    manifest_descriptor = {
        **_blob(layout, json.dumps(manifest).encode()),
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "annotations": {"org.opencontainers.image.ref.name": "app"},
    }
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest_descriptor],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return str(manifest_descriptor["digest"])

"""The OCI image model (descriptors, image config, manifest, index) and its JSON wire form.

Only what the builder writes and the pusher reads: single-platform images whose layers are gzipped
tars. Serialisation is canonical (sorted keys, no whitespace), so a model has exactly one byte form and
one digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from containers.hashing import canonical_json

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (MANIFEST, DOCKER_MANIFEST)
LAYOUT_VERSION = "1.0.0"

REF_NAME = "org.opencontainers.image.ref.name"
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Descriptor:
        return cls(data["mediaType"], data["digest"], int(data["size"]), dict(data.get("annotations", {})))

    @classmethod
    def of(cls, media_type: str, data: bytes, annotations: Mapping[str, str] | None = None) -> Descriptor:
        return cls(media_type, digest_of(data), len(data), dict(annotations or {}))


@dataclass(frozen=True)
class History:
    created: str
    created_by: str
    comment: str = ""
    empty_layer: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"created": self.created, "created_by": self.created_by}
        if self.comment:
            data["comment"] = self.comment
        if self.empty_layer:
            data["empty_layer"] = True
        return data


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an OCI image configuration the shop's images set."""

    created: str
    os: str
    architecture: str
    user: str
    env: Sequence[str]
    entrypoint: Sequence[str]
    working_dir: str
    exposed_ports: Sequence[str]
    labels: Mapping[str, str]
    diff_ids: Sequence[str]
    history: Sequence[History]
    cmd: Sequence[str] = ()
    stop_signal: str = "SIGTERM"

    def to_json(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "User": self.user,
            "Env": list(self.env),
            "Entrypoint": list(self.entrypoint),
            "WorkingDir": self.working_dir,
            "ExposedPorts": {port: {} for port in self.exposed_ports},
            "Labels": dict(self.labels),
            "StopSignal": self.stop_signal,
        }
        if self.cmd:
            config["Cmd"] = list(self.cmd)
        return {
            "created": self.created,
            "architecture": self.architecture,
            "os": self.os,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": list(self.diff_ids)},
            "history": [entry.to_json() for entry in self.history],
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


@dataclass(frozen=True)
class Manifest:
    config: Descriptor
    layers: Sequence[Descriptor]
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        parsed = json.loads(data)
        return cls(
            Descriptor.from_json(parsed["config"]),
            [Descriptor.from_json(layer) for layer in parsed["layers"]],
            dict(parsed.get("annotations", {})),
        )


@dataclass(frozen=True)
class Index:
    manifests: Sequence[Descriptor]

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [manifest.to_json() for manifest in self.manifests],
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

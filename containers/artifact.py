"""An image as built: its manifest, config and layers, and where in the store each blob is.

Read back from the store by the manifest's realisation alone (its record names its config and layer
inputs), so the layout writer, the pusher and the garbage collector need no plan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from containers.errors import ContainersError
from containers.oci import Descriptor, Manifest
from containers.store import Realisation, Store


@dataclass(frozen=True)
class Blob:
    """A blob the image references; `path` is None for a base layer that is not held locally."""

    descriptor: Descriptor
    path: Path | None


@dataclass(frozen=True)
class BuiltImage:
    name: str
    variant: str
    manifest: Descriptor
    manifest_path: Path
    config: Blob
    layers: tuple[Blob, ...]
    store_names: tuple[str, ...]

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @classmethod
    def from_store(cls, store: Store, name: str, variant: str, image: Realisation) -> BuiltImage:
        manifest_path = image.path / "manifest.json"
        data = manifest_path.read_bytes()
        manifest = Manifest.from_bytes(data)
        descriptor = Descriptor.from_json(json.loads((image.path / "descriptor.json").read_bytes()))
        inputs = {key: store.path(value) for key, value in image.inputs.items()}
        local: dict[str, Path] = {}
        for key, path in inputs.items():
            if key.startswith("layer-"):
                info = json.loads((path / "layer.json").read_bytes())
                local[info["digest"]] = path / "layer.tar.gz"
        config_path = inputs["config"] / "config.json"
        if "config" not in image.inputs or not config_path.exists():
            raise ContainersError(f"store: image {image.store_name} has no config")
        layers = tuple(Blob(layer, local.get(layer.digest)) for layer in manifest.layers)
        return cls(
            name=name,
            variant=variant,
            manifest=descriptor,
            manifest_path=manifest_path,
            config=Blob(manifest.config, config_path),
            layers=layers,
            store_names=(image.store_name, *image.inputs.values()),
        )

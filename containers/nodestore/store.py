"""The local cloud's image store: what `kind load` fills on a node, with a layer cache.

    <root>/blobs/sha256/<hex>     every imported blob (manifests, configs, layers), verified on import
    <root>/images.json            manifest digest -> names; `name:tag` -> manifest digest
    <root>/layers/<hex>/          each layer unpacked once, by its compressed digest
    <root>/rootfs/<hex>/          each image's merged root filesystem (see rootfs.py), by manifest digest

`load` imports an OCI image layout's `app` manifest (the image of the local cloud, see containers/).
`resolve` turns a reference into a `RunSpec`: `name@sha256:...` (any registry prefix) is found by digest,
`name:tag` and bare `name` (`:latest`) by the tags recorded at load. Writes to images.json hold a lock
file, so a CLI `load` and a running kubelet can share a store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from containers.nodestore import python as host
from containers.nodestore.errors import ImageError, ImagePullError
from containers.nodestore.reference import parse
from containers.nodestore.rootfs import merge_layers
from containers.nodestore.runspec import RunSpec, build_runspec
from containers.nodestore.unpack import file_digest, unpack_layer

APP_REF = "app"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
TITLE_LABEL = "org.opencontainers.image.title"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


@dataclass(frozen=True)
class LoadedImage:
    digest: str
    names: list[str]
    layers: int
    bytes: int


class ImageStore:
    def __init__(
        self,
        root: Path,
        find_python: Callable[[str], Path | None] = host.host_python,
        host_versions: Callable[[], list[str]] = host.host_versions,
    ) -> None:
        self.root = root.absolute()  # handed to processes that run in other directories
        self.find_python = find_python
        self.host_versions = host_versions
        self.blobs = root / "blobs" / "sha256"
        self.index_path = root / "images.json"
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- loading

    def load(
        self, layout: Path, name: str | None = None, tag: str = "latest", ref: str = APP_REF
    ) -> LoadedImage:
        """Import the `ref` manifest of the OCI layout at `layout`, tagged `name:tag`.

        The name defaults to the one `containers` recorded for this layout in `<out>/images.json`
        (for `<out>/oci/<service>`), else to the layout directory's name.
        """
        manifest_descriptor = self._pick_manifest(layout, ref)
        digest = str(manifest_descriptor["digest"])
        manifest = self._read_json(self._import_blob(layout, digest))
        if manifest.get("mediaType", manifest_descriptor.get("mediaType")) not in MANIFEST_TYPES:
            raise ImageError(f"{layout}: {digest} is not an image manifest")
        total = 0
        for descriptor in [manifest["config"], *manifest["layers"]]:
            total += self._import_blob(layout, str(descriptor["digest"])).stat().st_size
        repository = parse(name or self._default_name(layout)).name
        with self._locked_index() as index:
            names = index["images"].setdefault(digest, [])
            if repository not in names:
                names.append(repository)
            index["tags"][f"{repository}:{tag}"] = digest
        return LoadedImage(
            digest, [f"{repository}:{tag}", f"{repository}@{digest}"], len(manifest["layers"]), total
        )

    def _pick_manifest(self, layout: Path, ref: str) -> dict[str, Any]:
        try:
            index = self._read_json(layout / "index.json")
        except FileNotFoundError:
            raise ImageError(f"{layout}: not an OCI image layout (no index.json)") from None
        manifests = list(index.get("manifests") or [])
        for descriptor in manifests:
            if (descriptor.get("annotations") or {}).get(REF_ANNOTATION) == ref:
                return dict(descriptor)
        if len(manifests) == 1:
            return dict(manifests[0])
        raise ImageError(f"{layout}: no manifest with ref {ref!r}")

    def _default_name(self, layout: Path) -> str:
        recorded = layout.resolve().parent.parent / "images.json"
        with contextlib.suppress(OSError, ValueError, AttributeError):
            reference = json.loads(recorded.read_text()).get(layout.name)
            if isinstance(reference, str):
                return reference.split("@", 1)[0]
        return layout.name.lower()

    def _import_blob(self, layout: Path, digest: str) -> Path:
        target = self.blobs / digest.removeprefix("sha256:")
        if target.exists():
            return target
        source = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
        if not source.is_file():
            raise ImageError(f"{layout}: blob {digest} is missing")
        if (actual := file_digest(source)) != digest:
            raise ImageError(f"{layout}: blob {digest} is corrupt (its sha256 is {actual})")
        self.blobs.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        try:
            os.link(source, partial)
        except OSError:
            shutil.copyfile(source, partial)
        os.replace(partial, target)
        return target

    # -- resolving

    def images(self) -> dict[str, list[str]]:
        """Loaded manifest digests and their names."""
        return dict(self._read_index()["images"])

    def manifest_digest(self, reference: str) -> str:
        """The manifest digest a reference names; `ImagePullError` if the store does not have it."""
        parsed = parse(reference)
        index = self._read_index()
        if parsed.digest:
            if parsed.digest in index["images"]:
                return parsed.digest
            raise ImagePullError(
                f"image {reference!r} not found: no image with digest {parsed.digest} is loaded"
            )
        digest = index["tags"].get(parsed.named_tag)
        if digest is None:
            raise ImagePullError(f"image {reference!r} not found: {parsed.named_tag} is not loaded")
        return str(digest)

    def resolve(self, reference: str) -> RunSpec:
        """The RunSpec of a loaded image, unpacking its layers into the cache on first use."""
        digest = self.manifest_digest(reference)
        manifest = self._verified_json(digest)
        config_blob = self._verified_json(str(manifest["config"]["digest"]))
        diff_ids = list((config_blob.get("rootfs") or {}).get("diff_ids") or [])
        layers = []
        for position, descriptor in enumerate(manifest["layers"]):
            layer_digest = str(descriptor["digest"])
            with self._lock(layer_digest):
                layers.append(
                    unpack_layer(
                        self._blob(layer_digest),
                        str(descriptor.get("mediaType", "")),
                        layer_digest,
                        diff_ids[position] if position < len(diff_ids) else None,
                        self.root / "layers" / layer_digest.removeprefix("sha256:"),
                    )
                )
        with self._lock(digest):
            rootfs = merge_layers(layers, self.root / "rootfs" / digest.removeprefix("sha256:"))
        return build_runspec(
            reference, digest, config_blob.get("config") or {}, rootfs, self.find_python, self.host_versions
        )

    def _lock(self, digest: str) -> threading.Lock:
        """One unpack of a digest at a time in this process (kubelet threads starting pods of one image);
        across processes the atomic rename decides."""
        with self._locks_guard:
            return self._locks.setdefault(digest, threading.Lock())

    def _blob(self, digest: str) -> Path:
        path = self.blobs / digest.removeprefix("sha256:")
        if not path.is_file():
            raise ImageError(f"the store lacks blob {digest}: load the image again")
        return path

    def _verified_json(self, digest: str) -> dict[str, Any]:
        """A manifest or config blob, checked against its digest (layers are checked as they unpack)."""
        path = self._blob(digest)
        if (actual := file_digest(path)) != digest:
            raise ImageError(f"blob {digest} is corrupt in the store (its sha256 is {actual})")
        return self._read_json(path)

    # -- the index file

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict):
            raise ImageError(f"{path}: not a JSON object")
        return data

    def _read_index(self) -> dict[str, dict[str, Any]]:
        try:
            data = self._read_json(self.index_path)
        except FileNotFoundError:
            data = {}
        return {"images": dict(data.get("images") or {}), "tags": dict(data.get("tags") or {})}

    @contextlib.contextmanager
    def _locked_index(self) -> Iterator[dict[str, dict[str, Any]]]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            index = self._read_index()
            yield index
            partial = self.index_path.with_name(f".images.json.{os.getpid()}")
            partial.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
            os.replace(partial, self.index_path)

"""Pushing built images to a registry, and recording what was pushed in build/images.json.

Per image: each blob the registry lacks (HEAD first), then the manifest by digest (and a tag if asked).
A blob already in another repository of this push is mounted rather than uploaded again (the dependency
layer is shared by every image). A full image's base layers are mounted from `base_from` when given,
else copied from the base's own registry through the store (fetched once, checked by digest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from containers.artifact import Blob, BuiltImage
from containers.errors import ContainersError
from containers.imagesjson import ImagesFile
from containers.oci import Descriptor
from containers.registry import Registry

FetchBaseLayer = Callable[[Descriptor], Path]


@dataclass
class PushReport:
    references: dict[str, str] = field(default_factory=dict)
    uploaded: int = 0
    mounted: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    manifests: int = 0

    def line(self) -> str:
        return (
            f"pushed {self.uploaded} blobs ({self.bytes_uploaded / 1e6:.1f} MB), mounted {self.mounted}, "
            f"skipped {self.skipped}, {self.manifests} new manifests for {len(self.references)} images"
        )


@dataclass
class Pusher:
    registry: Registry
    namespace: str
    fetch_base_layer: FetchBaseLayer | None = None
    base_from: str | None = None
    tag: str | None = None
    progress: Callable[[str], None] | None = None
    report: PushReport = field(default_factory=PushReport)
    holders: dict[str, str] = field(default_factory=dict)

    def push(self, images: Sequence[BuiltImage], images_file: ImagesFile | None = None) -> PushReport:
        for image in images:
            self.push_image(image)
        if images_file is not None:
            images_file.update(self.report.references)
        return self.report

    def push_image(self, image: BuiltImage) -> str:
        repository = f"{self.namespace}/{image.name}"
        for blob in image.blobs:
            self.push_blob(repository, blob)
        data = image.manifest_path.read_bytes()
        if not self.registry.has_manifest(repository, image.digest):
            self.registry.put_manifest(repository, image.digest, data, image.manifest.media_type)
            self.report.manifests += 1
        if self.tag:
            self.registry.put_manifest(repository, self.tag, data, image.manifest.media_type)
        reference = f"{self.registry.name}/{repository}@{image.digest}"
        self.report.references[image.name] = reference
        if self.progress is not None:
            self.progress(f"pushed {reference}")
        return reference

    def push_blob(self, repository: str, blob: Blob) -> None:
        digest = blob.descriptor.digest
        if self.registry.has_blob(repository, digest):
            self.report.skipped += 1
        elif self._mount(repository, blob):
            self.report.mounted += 1
        else:
            source = blob.path
            if source is None:
                if self.fetch_base_layer is None:
                    raise ContainersError(
                        f"{repository}: base layer {digest[:19]}… is missing and cannot be fetched"
                    )
                source = self.fetch_base_layer(blob.descriptor)
            self.registry.upload_blob(repository, digest, source)
            self.report.uploaded += 1
            self.report.bytes_uploaded += blob.descriptor.size
        self.holders.setdefault(digest, repository)

    def _mount(self, repository: str, blob: Blob) -> bool:
        source = self.holders.get(blob.descriptor.digest)
        if source is None and blob.path is None:
            source = self.base_from
        if source is None or source == repository:
            return False
        return self.registry.mount_blob(repository, blob.descriptor.digest, source)

"""OCI image layouts on disk: `oci-layout`, `index.json` and `blobs/sha256/<hex>`.

One layout per service, holding each built variant under its ref name (`app`, `full`), so
`skopeo inspect oci:build/oci/payment:app` and `umoci unpack --image build/oci/payment:app` work. Blobs
are hard links into the store where possible (copies across file systems). A full image's base layers
are not held locally: the image layout specification allows a layout to omit blobs it references.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from containers import oci
from containers.artifact import BuiltImage
from containers.hashing import canonical_json
from containers.oci import Descriptor, Index


def _place(source: Path, target: Path) -> None:
    if target.exists():
        return
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except OSError:
        shutil.copyfile(source, partial)
    os.replace(partial, target)


def write_layout(directory: Path, images: Sequence[BuiltImage]) -> None:
    """Make `directory` a layout holding exactly `images` (one per variant), reusing blobs already there."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": oci.LAYOUT_VERSION}))
    wanted: set[str] = set()
    entries = []
    for image in images:
        for blob in image.blobs:
            if blob.path is not None:
                hexdigest = blob.descriptor.digest.removeprefix("sha256:")
                _place(blob.path, blobs / hexdigest)
                wanted.add(hexdigest)
        manifest_hex = image.manifest.digest.removeprefix("sha256:")
        _place(image.manifest_path, blobs / manifest_hex)
        wanted.add(manifest_hex)
        entries.append(
            Descriptor(
                image.manifest.media_type,
                image.manifest.digest,
                image.manifest.size,
                {oci.REF_NAME: image.variant},
            )
        )
    index = directory / "index.json"
    partial = directory / "index.json.partial"
    partial.write_bytes(Index(entries).to_bytes())
    os.replace(partial, index)
    for stale in blobs.iterdir():
        if stale.name not in wanted:
            stale.unlink()

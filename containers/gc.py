"""The store's garbage collector: keep what the images in use need, delete the rest.

Roots are the manifests that OUT/images.json pins and that the layouts under OUT/oci hold (the last
build's results, like Nix's `result` links), and those the local cloud's image stores still have loaded
(`containers.nodestore`: their `images.json` lists them), so an image a running pod uses is kept after a
rebuild.
From each root the collector keeps its whole build closure (every input it was built from, so the next
build reuses them) or, with `runtime_only`, only the image's own blobs (manifest, config, layers).
Unfinished outputs and scratch directories are always removed.
Do not run it during a build.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from containers.errors import ContainersError
from containers.imagesjson import ImagesFile
from containers.store import Realisation, Store

MANIFEST_RECIPE = "image-manifest"
RUNTIME_INPUTS = {
    "config",
    "base-config",
}  # the base config is tiny, and fetching it again needs its registry


@dataclass
class GcReport:
    kept: int = 0
    deleted: list[str] = field(default_factory=list)
    freed: int = 0
    dry_run: bool = False

    def line(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return f"{verb} {len(self.deleted)} store paths ({self.freed / 1e6:.1f} MB), kept {self.kept}"


def root_digests(out: Path, image_stores: Sequence[Path] = ()) -> set[str]:
    digests = ImagesFile(out / "images.json").digests()
    for index in sorted((out / "oci").glob("*/index.json")):
        digests.update(entry["digest"] for entry in json.loads(index.read_bytes()).get("manifests", []))
    for image_store in image_stores:
        digests.update(loaded_digests(image_store))
    return digests


def loaded_digests(image_store: Path) -> set[str]:
    """The manifest digests a local cloud image store has loaded (none if it does not exist)."""
    try:
        index = json.loads((image_store / "images.json").read_bytes())
    except FileNotFoundError:
        return set()
    except ValueError as err:
        raise ContainersError(f"{image_store / 'images.json'}: not JSON ({err})") from None
    return set((index.get("images") or {}) if isinstance(index, dict) else ())


def live_paths(store: Store, digests: set[str], *, runtime_only: bool) -> set[str]:
    realisations = {found.store_name: found for found in store.realisations()}
    roots = [
        found
        for found in realisations.values()
        if found.record.get("recipe") == MANIFEST_RECIPE and _manifest_digest(found) in digests
    ]
    live: set[str] = set()
    stack = [found.store_name for found in roots]
    while stack:
        name = stack.pop()
        if name in live:
            continue
        live.add(name)
        found = realisations.get(name)
        if found is None:
            continue
        for input_name, store_name in found.inputs.items():
            if not runtime_only or input_name in RUNTIME_INPUTS or input_name.startswith("layer-"):
                stack.append(store_name)
    return live


def collect(
    store_root: Path,
    out: Path,
    *,
    image_stores: Sequence[Path] = (),
    dry_run: bool = False,
    runtime_only: bool = False,
) -> GcReport:
    store = Store(store_root)
    live = live_paths(store, root_digests(out, image_stores), runtime_only=runtime_only)
    report = GcReport(dry_run=dry_run)
    for found in list(store.realisations()):
        if found.store_name in live:
            report.kept += 1
            continue
        report.deleted.append(found.store_name)
        report.freed += _size(found.path)
        if not dry_run:
            store.delete(found.store_name)
    for orphan in store.orphans():
        report.deleted.append(orphan.name)
        report.freed += _size(orphan)
        if not dry_run:
            shutil.rmtree(orphan, ignore_errors=True)
    return report


def _manifest_digest(found: Realisation) -> str:
    try:
        return str(json.loads((found.path / "descriptor.json").read_bytes())["digest"])
    except (OSError, ValueError, KeyError):
        return ""


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())

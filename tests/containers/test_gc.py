"""The store's garbage collector keeps what build/images.json and the layouts need, and nothing else."""

from __future__ import annotations

import json

from containers.gc import collect
from containers.nodestore import ImageStore
from containers.store import Store
from tests.containers.conftest import Workspace, run_cli


def names(workspace: Workspace) -> set[str]:
    return {found.store_name for found in Store(workspace.store).realisations()}


def test_gc_deletes_what_an_edit_left_behind_and_keeps_what_the_next_build_reuses(
    workspace: Workspace,
) -> None:
    name = workspace.images[0]
    first = workspace.build()
    old = set(first.images[name]["app"].store_names)
    module = workspace.project / "services" / name.replace("-", "_") / "__init__.py"
    module.write_text(module.read_text() + "\n# edited\n")
    second = workspace.build()
    current = set(second.images[name]["app"].store_names)
    stale = old - current
    assert stale
    assert all(stale_name in names(workspace) for stale_name in stale)

    dry = collect(workspace.store, workspace.out, dry_run=True)
    assert dry.dry_run
    assert set(stale) <= set(dry.deleted)
    assert stale <= names(workspace)

    report = collect(workspace.store, workspace.out)
    left = names(workspace)
    assert not stale & left
    assert current <= left
    assert report.freed > 0
    assert report.line().startswith(f"deleted {len(report.deleted)} store paths")
    assert workspace.build().built == 0  # everything the current images were built from is still there


def test_runtime_only_keeps_the_images_blobs_but_not_the_wheels(workspace: Workspace) -> None:
    workspace.build()
    images = json.loads((workspace.out / "images.json").read_text())
    result = run_cli(["gc", "--runtime-only", "--store", str(workspace.store), "--out", str(workspace.out)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("deleted ")
    left = names(workspace)
    assert not any("-wheel-" in store_name or "-site-" in store_name for store_name in left)
    kept_recipes = {json.loads((workspace.store / f"{n}.json").read_text())["recipe"] for n in left}
    assert kept_recipes == {"image-manifest", "image-config", "pack-dependencies", "pack-code"}
    for reference in images.values():
        digest = reference.split("@")[1]
        blob = (
            workspace.out / "oci" / reference.split("@")[0].split("/")[-1] / "blobs" / "sha256" / digest[7:]
        )
        assert blob.is_file()


def test_gc_without_roots_empties_the_store(workspace: Workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    report = collect(workspace.store, tmp_path / "nothing-built-here")
    assert report.kept == 0
    assert names(workspace) == set()


def test_an_image_the_local_cloud_has_loaded_is_kept_after_a_rebuild(workspace: Workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    name = workspace.images[0]
    first = workspace.build()
    loaded = ImageStore(tmp_path / "images")
    loaded.load(workspace.out / "oci" / name)
    old = set(first.images[name]["app"].store_names)
    module = workspace.project / "services" / name.replace("-", "_") / "__init__.py"
    module.write_text(module.read_text() + "\n# edited\n")
    second = workspace.build()
    stale = old - set(second.images[name]["app"].store_names)
    assert stale

    kept = collect(workspace.store, workspace.out, image_stores=[tmp_path / "images"], dry_run=True)
    assert not stale & set(kept.deleted)
    dropped = collect(workspace.store, workspace.out, dry_run=True)
    assert stale <= set(dropped.deleted)

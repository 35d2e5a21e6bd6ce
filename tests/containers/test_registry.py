"""Pushing to a real registry (Debian's docker-registry) and pulling back by digest with skopeo."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import httpx

from containers import oci
from containers.build import APP, FULL
from containers.oci import Descriptor, History, ImageConfig, Manifest
from containers.push import Pusher
from containers.registry import Registry
from containers.tarball import LayerTree
from tests.containers.conftest import LocalRegistry, Workspace, require_tool, run_cli


def push_cli(workspace: Workspace, registry: LocalRegistry, *extra: str) -> str:
    result = run_cli(
        [
            "push",
            "--registry",
            registry.host,
            "--project",
            str(workspace.project),
            "--store",
            str(workspace.store),
            "--out",
            str(workspace.out),
            "--revision",
            "test",
            "--only",
            *workspace.images,
            *extra,
        ],
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def pull(reference: str, into: Path) -> Path:
    skopeo = require_tool("skopeo")
    subprocess.run(
        [skopeo, "copy", "--src-tls-verify=false", f"docker://{reference}", f"oci:{into}:pulled"],
        capture_output=True,
        check=True,
    )
    return into


def test_push_then_pull_by_digest_returns_identical_bytes_and_a_second_push_uploads_nothing(
    workspace: Workspace, registry: LocalRegistry, tmp_path: Path
) -> None:
    line = push_cli(workspace, registry, "--variant", APP)
    assert "pushed " in line
    assert "skipped 0" in line
    references = json.loads((workspace.out / "images.json").read_text())
    for name in workspace.images:
        reference = references[name]
        assert reference.startswith(f"{registry.host}/shopstack/{name}@sha256:")
        pulled = pull(reference, tmp_path / name)
        ours = workspace.out / "oci" / name / "blobs" / "sha256"
        theirs = pulled / "blobs" / "sha256"
        assert sorted(p.name for p in theirs.iterdir()) == sorted(p.name for p in ours.iterdir())
        for blob in theirs.iterdir():
            assert blob.read_bytes() == (ours / blob.name).read_bytes()
        assert (
            json.loads((pulled / "index.json").read_text())["manifests"][0]["digest"]
            == reference.split("@")[1]
        )
    if len(workspace.images) > 1:
        assert "mounted 0" not in line  # the shared dependency layer was mounted, not uploaded again
    again = push_cli(workspace, registry, "--variant", APP)
    assert "pushed 0 blobs (0.0 MB), mounted 0" in again
    assert "0 new manifests" in again


def test_chunked_uploads_and_tags_work(workspace: Workspace, registry: LocalRegistry) -> None:
    result = workspace.build()
    name = workspace.images[0]
    with Registry(registry.host, chunk_size=1 << 20) as client:
        report = Pusher(client, "chunked", tag="v1").push([result.images[name][APP]])
        assert report.uploaded == 3
        assert len(client.uploads) == 3
        manifest, media_type = client.get_manifest(f"chunked/{name}", "v1")
    assert media_type == oci.MANIFEST
    assert oci.digest_of(manifest) == result.images[name][APP].digest
    assert httpx.get(f"{registry.url}/v2/chunked/{name}/tags/list").json()["tags"] == ["v1"]


def publish_fake_base(registry: LocalRegistry, tmp_path: Path) -> str:
    """A tiny base image in the registry (the real one is on Docker Hub); its record, as bases/*.toml."""
    root = tmp_path / "base-root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "fake-base-release").write_text("fake python base\n")
    tree = LayerTree()
    tree.add_tree(root, "")
    info = tree.write(tmp_path / "base.tar.gz", 0)
    config = ImageConfig(
        created="1970-01-01T00:00:00Z",
        os="linux",
        architecture="amd64",
        user="",
        env=["LANG=C.UTF-8", "PATH=/usr/bin"],
        entrypoint=[],
        working_dir="/",
        exposed_ports=[],
        labels={},
        diff_ids=[info.diff_id],
        history=[History("1970-01-01T00:00:00Z", "fake base")],
        cmd=["python3"],
    ).to_bytes()
    (tmp_path / "base-config.json").write_bytes(config)
    layer = Descriptor(oci.LAYER_GZIP, info.digest, info.size)
    manifest = Manifest(Descriptor.of(oci.CONFIG, config), [layer]).to_bytes()
    with Registry(registry.host) as client:
        client.upload_blob("library/fakebase", layer.digest, tmp_path / "base.tar.gz")
        client.upload_blob("library/fakebase", oci.digest_of(config), tmp_path / "base-config.json")
        manifest_digest = client.put_manifest("library/fakebase", "3.11", manifest, oci.MANIFEST)
    return f"""
reference = "{registry.host}/library/fakebase:3.11"
index = "{manifest_digest}"
manifest = "{manifest_digest}"
config = "{oci.digest_of(config)}"
python = "3.11.15"
os = "linux"
architecture = "amd64"
layers = [{{ media_type = "{oci.LAYER_GZIP}", size = {info.size}, digest = "{info.digest}" }}]
"""


def test_a_full_image_on_a_pinned_base_is_pushed_by_mount_or_copy_and_unpacks_whole(
    workspace: Workspace, registry: LocalRegistry, second_registry: LocalRegistry, tmp_path: Path
) -> None:
    umoci = require_tool("umoci")
    declaration = workspace.project / "containers"
    (declaration / "bases" / "fakebase.toml").write_text(publish_fake_base(registry, tmp_path))
    text = (declaration / "images.toml").read_text()
    (declaration / "images.toml").write_text(text.replace('base = "python-3.11-slim"', 'base = "fakebase"'))

    count = len(workspace.images)
    declared = tomllib.loads(text)["images"]
    # an image of another dependency group than the project's (the load generator's) has one layer more
    groups = len({declared[name]["group"] for name in workspace.images} - {"project"})
    mounted = push_cli(workspace, registry, "--variant", FULL, "--base-from", "library/fakebase")
    # configs, code layers and each dependency layer once are uploaded; the base layer is mounted into
    # every repository, the project's dependency layer into all but the first
    assert f"pushed {2 * count + 1 + groups} blobs" in mounted
    assert f"mounted {2 * count - 1}," in mounted
    copied = push_cli(workspace, second_registry, "--variant", FULL)
    # a registry without the base: its layer is fetched (by digest, into the store) and uploaded once
    assert f"pushed {2 * count + 2 + groups} blobs" in copied
    assert f"mounted {2 * (count - 1)}," in copied
    assert list(workspace.store.glob("*-base-layer-fakebase-*.json"))
    name = workspace.images[0]
    reference = json.loads((workspace.out / "images.json").read_text())[name]
    assert reference.startswith(second_registry.host)

    pulled = pull(reference, tmp_path / "pulled")
    bundle = tmp_path / "bundle"
    subprocess.run(
        [umoci, "unpack", "--rootless", "--image", f"{pulled}:pulled", str(bundle)],
        capture_output=True,
        check=True,
    )
    assert (bundle / "rootfs" / "etc" / "fake-base-release").read_text() == "fake python base\n"
    assert (bundle / "rootfs" / "app" / "services" / "common").is_dir()
    process = json.loads((bundle / "config.json").read_text())["process"]
    assert process["user"]["uid"] == 10001
    assert "LANG=C.UTF-8" in process["env"]
    assert "PYTHONPATH=/app:/opt/shopstack/site-packages" in process["env"]
    manifest = json.loads((pulled / "blobs" / "sha256" / reference.split(":")[-1]).read_text())
    assert manifest["annotations"][oci.BASE_NAME] == f"{registry.host}/library/fakebase:3.11"
    layout = json.loads((workspace.out / "oci" / name / "index.json").read_text())
    assert {entry["annotations"][oci.REF_NAME] for entry in layout["manifests"]} == {APP, FULL}

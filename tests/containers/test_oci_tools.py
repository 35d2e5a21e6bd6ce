"""The layouts are real OCI image layouts: skopeo and umoci (the reference tools) read and unpack them."""

from __future__ import annotations

import json
import stat
import subprocess
import tomllib
from pathlib import Path

from containers.build import APP
from tests.containers.conftest import Workspace, require_tool

SERVICE_IMAGE = "payment"


def image_name(warm: Workspace) -> str:
    return SERVICE_IMAGE if SERVICE_IMAGE in warm.images else warm.images[0]


def test_skopeo_inspects_every_layout_with_labels_user_entrypoint_and_env(warm: Workspace) -> None:
    skopeo = require_tool("skopeo")
    images = json.loads((warm.out / "images.json").read_text())
    declared = tomllib.loads((warm.project / "containers" / "images.toml").read_text())["images"]
    for name in warm.images:
        layout = f"oci:{warm.out / 'oci' / name}:{APP}"
        inspected = json.loads(
            subprocess.run([skopeo, "inspect", layout], capture_output=True, check=True).stdout
        )
        assert f"shopstack/{name}@{inspected['Digest']}" == images[name]
        assert inspected["Labels"]["org.opencontainers.image.revision"] == "test"
        assert inspected["Labels"]["org.opencontainers.image.version"] == "0.1.0"
        assert inspected["Labels"]["org.opencontainers.image.source"].startswith("https://")
        assert inspected["Created"] == "1970-01-01T00:00:00Z"
        config = json.loads(
            subprocess.run([skopeo, "inspect", "--config", layout], capture_output=True, check=True).stdout
        )["config"]
        module = name.replace("-", "_")
        assert config["User"] == "10001:10001"
        assert config["Entrypoint"] == ["python", "-m", f"services.{module}"]
        assert config["WorkingDir"] == "/app"
        assert config["ExposedPorts"] == {f"{declared[name]['port']}/tcp": {}}
        assert "PYTHONPATH=/app:/opt/shopstack/site-packages" in config["Env"]


def test_umoci_unpacks_the_image_with_its_files_and_non_root_user(warm: Workspace, tmp_path: Path) -> None:
    umoci = require_tool("umoci")
    name = image_name(warm)
    bundle = tmp_path / "bundle"
    subprocess.run(
        [umoci, "unpack", "--rootless", "--image", f"{warm.out / 'oci' / name}:{APP}", str(bundle)],
        capture_output=True,
        check=True,
    )
    runtime = json.loads((bundle / "config.json").read_text())
    assert runtime["process"]["user"]["uid"] == 10001
    assert runtime["process"]["user"]["gid"] == 10001
    assert runtime["process"]["args"] == ["python", "-m", f"services.{name.replace('-', '_')}"]
    assert runtime["process"]["cwd"] == "/app"
    rootfs = bundle / "rootfs"
    package = rootfs / "app" / "services" / name.replace("-", "_")
    assert (package / "__main__.py").is_file()
    assert (rootfs / "app" / "services" / "common" / "__init__.py").is_file()
    assert (rootfs / "opt" / "shopstack" / "site-packages" / "quart" / "__init__.py").is_file()
    assert list(
        (rootfs / "opt" / "shopstack" / "site-packages" / "quart" / "__pycache__").glob("*.cpython-311.pyc")
    )
    main = (package / "__main__.py").stat()
    assert stat.S_IMODE(main.st_mode) == 0o644
    assert main.st_mtime == 0
    source_files = {
        p.relative_to(warm.project).as_posix()
        for p in (warm.project / "services" / name.replace("-", "_")).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    unpacked = {
        p.relative_to(rootfs / "app").as_posix()
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert unpacked == source_files  # package data (templates, static files, JSON) included


def test_skopeo_copies_a_layout_without_changing_a_digest(warm: Workspace, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    name = image_name(warm)
    source = f"oci:{warm.out / 'oci' / name}:{APP}"
    subprocess.run(
        [skopeo, "copy", source, f"oci:{tmp_path / 'copy'}:{APP}"], capture_output=True, check=True
    )
    ours = json.loads((warm.out / "oci" / name / "index.json").read_text())["manifests"][0]["digest"]
    theirs = json.loads((tmp_path / "copy" / "index.json").read_text())["manifests"][0]["digest"]
    assert ours == theirs

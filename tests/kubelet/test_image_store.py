"""The image store on hand-written layouts: references, safe and verified unpacking, layer merging,
the Python version check, unknown images."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from containers.nodestore import ImageError, ImagePullError, ImageStore
from containers.nodestore.reference import parse
from tests.kubelet.oci import layer_bytes, write_layout

HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
MAIN = b"print('hello from the image')\n"


def info(name: str, kind: bytes, **fields: object) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    for key, value in fields.items():
        setattr(member, key, value)
    return member


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


@pytest.mark.parametrize(
    ("text", "name", "tag", "registry"),
    [
        ("shopstack/payment", "shopstack/payment", None, None),
        ("shopstack/payment:v1", "shopstack/payment", "v1", None),
        ("localhost:5000/shopstack/payment:v1", "shopstack/payment", "v1", "localhost:5000"),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/shopstack/payment@sha256:" + "a" * 64,
            "shopstack/payment",
            None,
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        ),
    ],
)
def test_references_parse_like_docker(text: str, name: str, tag: str | None, registry: str | None) -> None:
    parsed = parse(text)
    assert (parsed.name, parsed.tag, parsed.registry) == (name, tag, registry)
    assert str(parsed) == text


@pytest.mark.parametrize("text", ["Shop/Payment", "shop@sha256:123", "shop:bad tag", ""])
def test_malformed_references_are_pull_errors(text: str) -> None:
    with pytest.raises(ImagePullError, match="invalid image reference"):
        parse(text)


def test_an_image_resolves_by_digest_from_any_registry_and_by_tag(store: ImageStore, tmp_path: Path) -> None:
    digest = write_layout(tmp_path / "oci" / "hello", [layer_bytes([("app/main.py", MAIN)])])
    loaded = store.load(tmp_path / "oci" / "hello", name="shopstack/hello", tag="v1")
    assert loaded.digest == digest
    ecr = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/shopstack/hello@{digest}"
    for reference in (
        ecr,
        f"shopstack/hello@{digest}",
        "shopstack/hello:v1",
        "localhost:5000/shopstack/hello:v1",
    ):
        spec = store.resolve(reference)
        assert spec.digest == digest
    spec = store.resolve(ecr)
    assert spec.argv[1:] == ["-m", "main"]
    assert Path(spec.argv[0]).name.startswith("python")
    assert ".venv" not in spec.argv[0]  # the base interpreter, without the source tree's venv
    assert spec.working_dir == spec.rootfs / "app"
    assert spec.env["PYTHONPATH"] == str(spec.rootfs / "app")
    assert spec.env["PATH"] == "/usr/bin:/bin"  # paths the image does not hold stay the host's
    assert (spec.working_dir / "main.py").read_bytes() == MAIN


def test_an_unknown_image_is_a_pull_error(store: ImageStore, tmp_path: Path) -> None:
    write_layout(tmp_path / "oci" / "hello", [layer_bytes([("app/main.py", MAIN)])])
    store.load(tmp_path / "oci" / "hello", name="shopstack/hello")
    with pytest.raises(ImagePullError, match=r"shopstack/nope:latest is not loaded"):
        store.resolve("shopstack/nope")
    with pytest.raises(ImagePullError, match="no image with digest"):
        store.resolve("shopstack/hello@sha256:" + "0" * 64)


def test_a_python_version_the_host_lacks_is_a_clear_error(store: ImageStore, tmp_path: Path) -> None:
    layout = tmp_path / "oci" / "future"
    write_layout(layout, [layer_bytes([("app/main.py", MAIN)])], labels={"io.shopstack.python": "3.99"})
    store.load(layout, name="shopstack/future")
    with pytest.raises(ImageError) as caught:
        store.resolve("shopstack/future")
    assert "needs Python 3.99" in str(caught.value)
    assert HOST_PYTHON in str(caught.value)
    assert not isinstance(caught.value, ImagePullError)


def test_layers_are_unpacked_once_and_merged_with_whiteouts(store: ImageStore, tmp_path: Path) -> None:
    lower = layer_bytes(
        [("app/keep.py", b"lower"), ("app/gone.py", b"x"), ("app/over.py", b"lower"), ("etc/a", b"a")]
    )
    upper = layer_bytes([("app/.wh.gone.py", b""), ("app/over.py", b"upper"), ("app/main.py", MAIN)])
    write_layout(tmp_path / "oci" / "two", [lower, upper])
    store.load(tmp_path / "oci" / "two", name="shopstack/two")
    spec = store.resolve("shopstack/two")
    app = spec.rootfs / "app"
    assert sorted(os.listdir(app)) == ["keep.py", "main.py", "over.py"]
    assert (app / "over.py").read_bytes() == b"upper"
    assert (spec.rootfs / "etc").is_symlink()  # a subtree only one layer has is that layer's directory
    assert str((spec.rootfs / "etc").resolve()).startswith(str(store.root / "layers"))
    inode = (app / "keep.py").resolve().stat().st_ino
    assert store.resolve("shopstack/two").rootfs == spec.rootfs
    assert (app / "keep.py").resolve().stat().st_ino == inode  # not unpacked again
    assert not os.access((app / "keep.py").resolve(), os.W_OK) or os.geteuid() == 0


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (info("/etc/passwd", tarfile.REGTYPE), "absolute path"),
        (info("app/../../escape", tarfile.REGTYPE), r"'\.\.' in path"),
        (info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3), "refused type"),
        (info("app/fifo", tarfile.FIFOTYPE), "refused type"),
        (info("app/link", tarfile.LNKTYPE, linkname="../outside"), r"'\.\.' in path"),
    ],
)
def test_unsafe_layers_are_refused(
    store: ImageStore, tmp_path: Path, member: tarfile.TarInfo, message: str
) -> None:
    write_layout(tmp_path / "oci" / "bad", [layer_bytes([("app/main.py", MAIN), member])])
    store.load(tmp_path / "oci" / "bad", name="shopstack/bad")
    with pytest.raises(ImageError, match=message):
        store.resolve("shopstack/bad")
    assert not list((store.root / "layers").glob("*/app")) if (store.root / "layers").exists() else True


def test_nothing_is_written_through_a_symlink(store: ImageStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    link = info("app/out", tarfile.SYMTYPE, linkname=str(outside))
    payload = tarfile.TarInfo("app/out/pwned")
    payload.size = 1
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.addfile(link)
        tar.addfile(payload, io.BytesIO(b"x"))
    write_layout(tmp_path / "oci" / "sly", [raw.getvalue()])
    store.load(tmp_path / "oci" / "sly", name="shopstack/sly")
    with pytest.raises(ImageError, match="not a directory"):
        store.resolve("shopstack/sly")
    assert not (outside / "pwned").exists()


def test_a_corrupt_blob_is_refused_at_load(store: ImageStore, tmp_path: Path) -> None:
    layout = tmp_path / "oci" / "corrupt"
    write_layout(layout, [layer_bytes([("app/main.py", MAIN)])])
    biggest = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes() + b"tampered")
    with pytest.raises(ImageError, match="corrupt"):
        store.load(layout, name="shopstack/corrupt")


def test_a_corrupt_cached_blob_is_refused_at_unpack(store: ImageStore, tmp_path: Path) -> None:
    layout = tmp_path / "oci" / "rot"
    digest = write_layout(layout, [layer_bytes([("app/main.py", MAIN)])])
    store.load(layout, name="shopstack/rot")
    manifest = json.loads((store.blobs / digest.removeprefix("sha256:")).read_text())
    layer = store.blobs / manifest["layers"][0]["digest"].removeprefix("sha256:")
    data = layer.read_bytes()
    layer.unlink()  # a hard link to the layout's blob: replace, do not modify in place
    layer.write_bytes(data + b"rot")
    with pytest.raises(ImageError, match="corrupt"):
        store.resolve("shopstack/rot")
    assert not (store.root / "layers").exists() or not any(
        p.name[0] != "." for p in (store.root / "layers").iterdir()
    )


def test_the_cli_loads_a_layout_like_kind_load(tmp_path: Path) -> None:
    layout = tmp_path / "out" / "oci" / "hello"
    digest = write_layout(layout, [layer_bytes([("app/main.py", MAIN)])])
    (tmp_path / "out" / "images.json").write_text(f'{{"hello": "shopstack/hello@{digest}"}}')
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "containers.nodestore",
            "--store",
            str(tmp_path / "store"),
            "load",
            str(layout),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"loaded shopstack/hello:latest {digest}" in run.stdout
    assert ImageStore(tmp_path / "store").resolve("shopstack/hello").digest == digest
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "containers.nodestore",
            "--store",
            str(tmp_path / "store"),
            "resolve",
            "shopstack/nope",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: image 'shopstack/nope' not found")


def test_the_images_python_scripts_run_with_the_host_python(store: ImageStore, tmp_path: Path) -> None:
    script = b"#!/usr/local/bin/python3\nimport sys\nprint('tool', *sys.argv[1:])\n"
    tool = tarfile.TarInfo("opt/tools/bin/tool")
    tool.size, tool.mode = len(script), 0o755
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.addfile(tool, io.BytesIO(script))
    layout = tmp_path / "oci" / "tools"
    write_layout(
        layout, [raw.getvalue()], config={"Env": ["PATH=/opt/tools/bin:/usr/bin:/bin"], "WorkingDir": "/"}
    )
    store.load(layout, name="shopstack/tools")
    spec = store.resolve("shopstack/tools")
    assert spec.working_dir == spec.rootfs
    for program in ("tool", "/opt/tools/bin/tool"):
        argv = spec.rewrite_argv([program, "/opt/tools/bin", "/elsewhere"])
        assert argv[1:] == [
            str(spec.rootfs / "opt/tools/bin/tool"),
            str(spec.rootfs / "opt/tools/bin"),
            "/elsewhere",
        ]
        assert Path(argv[0]) == spec.python
    assert spec.rewrite_argv(["sh", "-c", "true"]) == ["sh", "-c", "true"]  # not the image's: the host's
    run = subprocess.run(
        spec.rewrite_argv(["tool", "ok"]), capture_output=True, text=True, timeout=30, check=True
    )
    assert run.stdout == "tool ok\n"

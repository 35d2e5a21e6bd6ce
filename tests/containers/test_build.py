"""Building the shop's images: reproducible, incremental, and runnable from their own layers."""

from __future__ import annotations

import functools
import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest

from containers.artifact import BuiltImage
from containers.build import APP, BuildResult, project_version
from containers.errors import ContainersError
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.containers.conftest import HOST, REPO, Workspace, run_cli

CODE_STEPS = ["config-{0}", "image-{0}", "layer-code-{0}", "src-{0}"]


def layout_digests(out: Path) -> dict[str, list[str]]:
    """Each image's manifest digest and blob names, from the layouts alone."""
    found = {}
    for index in sorted((out / "oci").glob("*/index.json")):
        manifests = [entry["digest"] for entry in json.loads(index.read_bytes())["manifests"]]
        blobs = sorted(path.name for path in (index.parent / "blobs" / "sha256").iterdir())
        found[index.parent.name] = [*manifests, *blobs]
    return found


def network_settings() -> dict[str, str]:
    """The variables that say how to reach PyPI here (trust store, proxies): kept, all else is changed."""
    return {
        key: value
        for key, value in os.environ.items()
        if key.startswith("SSL_CERT") or key.lower().endswith("_proxy") or key == "REQUESTS_CA_BUNDLE"
    }


def app_images(result: BuildResult) -> dict[str, BuiltImage]:
    return {name: variants[APP] for name, variants in result.images.items()}


def config_env(image: BuiltImage) -> dict[str, str]:
    """The image config's environment, as a mapping."""
    assert image.config.path is not None
    config = json.loads(image.config.path.read_bytes())["config"]
    return dict(item.split("=", 1) for item in config["Env"])


def test_two_builds_in_different_directories_users_and_times_give_the_same_digests(
    warm: Workspace, tmp_path: Path
) -> None:
    outs = []
    settings = [
        (
            {
                "TZ": "UTC",
                "LANG": "C",
                "HOME": str(tmp_path),
                "PYTHONHASHSEED": "1",
                "PATH": os.environ["PATH"],
            },
            0o022,
            "1",
            tmp_path / "a",
        ),
        (
            # no uv on PATH, as outside tox: the build uses the environment's own (a locked dependency)
            {
                "TZ": "Asia/Tokyo",
                "LANG": "de_DE.UTF-8",
                "HOME": "/nonexistent",
                "PYTHONHASHSEED": "2",
                "PATH": "/usr/bin:/bin",
            },
            0o077,
            "4",
            tmp_path / "b" / "deeper" / "x",
        ),
    ]
    for env, umask, jobs, root in settings:
        project = root / "src"
        shutil.copytree(warm.project, project)  # the session's snapshot: services change while tests run
        out = root / "out"
        command = [
            sys.executable,
            "-m",
            "containers",
            "build",
            "--project",
            str(project),
            "--out",
            str(out),
            "--store",
            str(root / "store"),
            "--jobs",
            jobs,
            "--revision",
            "test",
            "--only",
            *warm.images,
        ]
        environment = {**network_settings(), **env, "PYTHONPATH": str(REPO)}
        result = subprocess.run(
            command,
            env=environment,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            preexec_fn=functools.partial(os.umask, umask),
        )
        assert result.returncode == 0, result.stderr
        outs.append(out)
    assert json.loads((outs[0] / "images.json").read_text()) == json.loads(
        (outs[1] / "images.json").read_text()
    )
    assert layout_digests(outs[0]) == layout_digests(outs[1]) == layout_digests(warm.out)


def test_a_no_op_build_runs_no_step(workspace: Workspace) -> None:
    result = workspace.build()
    assert result.built == 0
    assert result.built_steps == []
    assert result.reused > 100
    assert result.line().startswith("built 0, reused ")


def test_a_one_line_change_to_one_service_rebuilds_only_its_code_layer_and_image(
    workspace: Workspace, warm: Workspace
) -> None:
    if "payment" not in workspace.images:
        pytest.skip("services/payment does not exist")
    before = app_images(workspace.build())
    cards = workspace.project / "services" / "payment" / "cards.py"
    cards.write_text(cards.read_text() + "\n# one more line\n")
    result = workspace.build()
    assert result.built_steps == [step.format("payment") for step in CODE_STEPS]
    after = app_images(result)
    assert after["payment"].digest != before["payment"].digest
    assert after["payment"].layers[0] == before["payment"].layers[0]  # the dependency layer
    assert after["payment"].layers[-1] != before["payment"].layers[-1]
    assert {n: i.digest for n, i in after.items() if n != "payment"} == {
        n: i.digest for n, i in before.items() if n != "payment"
    }


def test_a_change_to_services_common_rebuilds_every_code_layer_and_nothing_more(workspace: Workspace) -> None:
    common = workspace.project / "services" / "common" / "__init__.py"
    common.write_text(common.read_text() + "\n# shared change\n")
    result = workspace.build()
    expected = sorted(step.format(name) for name in workspace.images for step in CODE_STEPS)
    assert result.built_steps == expected


def test_service_version_names_the_build_and_another_revision_changes_only_configs_and_manifests(
    workspace: Workspace,
) -> None:
    version = project_version(workspace.project)
    before = app_images(workspace.build())
    commit = "0123456789abcdef0123456789abcdef01234567"
    result = workspace.build(revision=commit)
    after = app_images(result)
    # the revision is in the config (label and env) alone: the layers are reused
    assert result.built_steps == sorted(
        f"{kind}-{name}" for name in workspace.images for kind in ("config", "image")
    )
    for name in workspace.images:
        assert config_env(before[name])["SERVICE_VERSION"] == f"{version}+test"
        assert config_env(after[name])["SERVICE_VERSION"] == f"{version}+0123456789ab"
        assert after[name].digest != before[name].digest
        assert after[name].layers == before[name].layers


def test_a_revision_that_would_not_start_the_service_is_refused(workspace: Workspace) -> None:
    with pytest.raises(ContainersError, match="SERVICE_VERSION"):
        workspace.build(revision="two words")


def test_every_image_shares_one_dependency_layer(warm: Workspace) -> None:
    result = warm.build()
    first_layers = {image.layers[0].descriptor.digest for image in app_images(result).values()}
    assert len(first_layers) == 1


def test_check_rebuilds_every_step_and_finds_the_same_bytes(workspace: Workspace) -> None:
    result = run_cli(
        [
            "build",
            "--check",
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
        ],
    )
    assert result.returncode == 0, result.stderr
    assert ", 0 not reproducible" in result.stdout
    assert "checked " in result.stdout


def unpack(image: BuiltImage, rootfs: Path) -> None:
    rootfs.mkdir(parents=True)
    # extraction filters came with 3.11.4; the layers are our own, so older Pythons extract unfiltered
    safety: dict[str, str] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    for layer in image.layers:
        assert layer.path is not None
        with tarfile.open(layer.path, "r:gz") as tar:
            tar.extractall(rootfs, **safety)  # type: ignore[arg-type]


def test_layers_hold_bytecode_but_no_build_path_and_no_timestamp(warm: Workspace) -> None:
    image = app_images(warm.build())[warm.images[0]]
    for layer in image.layers:
        assert layer.path is not None
        data = gzip.decompress(layer.path.read_bytes())
        for leak in (str(warm.project.parent), str(REPO)):
            assert leak.encode() not in data, f"{leak} in {layer.descriptor.digest}"
    with tarfile.open(image.layers[-1].path, "r:gz") as tar:
        pycs = [member for member in tar.getmembers() if member.name.endswith(".pyc")]
        assert pycs
        header = tar.extractfile(pycs[0]).read(16)  # type: ignore[union-attr]
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, source not checked: no mtime


def test_the_app_image_runs_the_service_from_its_own_layers(warm: Workspace, tmp_path: Path) -> None:
    if "payment" not in warm.images:
        pytest.skip("services/payment does not exist")
    image = app_images(warm.build())["payment"]
    rootfs = tmp_path / "rootfs"
    unpack(image, rootfs)
    config = json.loads(image.config.path.read_bytes())["config"]  # type: ignore[union-attr]
    env = config_env(image)
    env["PYTHONPATH"] = ":".join(str(rootfs) + part for part in env["PYTHONPATH"].split(":"))
    port = free_port(HOST)
    env.update({"PATH": os.environ["PATH"], "BIND_HOST": HOST, "PORT": str(port)})
    assert config["Entrypoint"][:2] == ["python", "-m"]
    argv = [sys.executable, "-S", *config["Entrypoint"][1:]]  # -S: no host site-packages, only the layers
    service = ManagedProcess(
        "payment", argv, tmp_path / "payment.log", env=env, cwd=rootfs / config["WorkingDir"].lstrip("/")
    )
    service.start()
    try:
        service.wait_ready(lambda: http_ok(f"http://{HOST}:{port}/healthz"), timeout=30)
        health = httpx.get(f"http://{HOST}:{port}/healthz")
        version = f"{project_version(warm.project)}+test"
        assert health.json() == {"status": "ok", "version": version}
        assert health.headers["X-Service-Version"] == version
        probe = subprocess.run(
            [
                sys.executable,
                "-S",
                "-c",
                "import services.payment, hypercorn; print(services.payment.__file__, hypercorn.__file__)",
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        assert all(path.startswith(str(rootfs)) for path in probe.stdout.split())
    finally:
        service.stop(grace=10)

"""Steps for the locked dependencies: resolve the group's wheel set, fetch each wheel, install each into
its own store path, and pack a group's installs into one layer.

Fetching is fixed-output (the lock's sha256). Installing uses pypa's `installer` with the image's paths
(not the store's) and no bytecode: nothing in the output names the machine or the time it was made.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import installer
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile

from containers import lock, tarball
from containers.derivation import BuildContext, Derivation, FixedOutput, Recipe
from containers.errors import ContainersError
from containers.hashing import canonical_json
from containers.lock import LockedWheel
from containers.platform import Target
from containers.recipes import bytecode, rootfs
from containers.tarball import LayerTree

FETCH_ATTEMPTS = 3
INSTALLER_NAME = b"shopstack-containers\n"


def resolve(context: BuildContext) -> None:
    project = context.inputs["project"]
    target = Target(**context.args["target"])
    pins = lock.export_requirements(lock.uv_binary(), project, context.args["group"], context.args["kind"])
    wheels = lock.select_wheels(pins, project / "uv.lock", target)
    (context.out / "closure.json").write_bytes(canonical_json([wheel.to_json() for wheel in wheels]))


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _http() -> httpx.Client:
    """One pooled client for every fetch of the process (connections to the index are reused)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(follow_redirects=True, timeout=120)
        return _client


def fetch(context: BuildContext) -> None:
    url, filename = context.args["url"], context.args["filename"]
    target = context.out / filename
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        try:
            with _http().stream("GET", url) as response:
                response.raise_for_status()
                with target.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
            return
        except httpx.HTTPError as err:
            if attempt == FETCH_ATTEMPTS:
                raise ContainersError(f"fetch {filename}: {err}") from err
            time.sleep(attempt)


def install(context: BuildContext) -> None:
    wheel = next(context.inputs["wheel"].iterdir())
    schemes = {
        "purelib": rootfs.SITE_PACKAGES,
        "platlib": rootfs.SITE_PACKAGES,
        "headers": f"{rootfs.PREFIX}/include/{context.args['name']}",
        "scripts": rootfs.SCRIPTS,
        "data": rootfs.PREFIX,
    }
    destination = SchemeDictionaryDestination(
        scheme_dict=schemes,
        interpreter=rootfs.INTERPRETER,
        script_kind="posix",
        destdir=str(context.out),
    )
    with WheelFile.open(wheel) as source:
        source.validate_record()
        installer.install(source, destination, {"INSTALLER": INSTALLER_NAME})
    site = context.out / rootfs.SITE_PACKAGES.lstrip("/")
    if context.args["bytecode"] and site.is_dir():
        bytecode.compile_tree(site, rootfs.SITE_PACKAGES)
    startup_files = sorted(path.name for path in site.glob("*.pth"))
    if startup_files:
        raise ContainersError(
            f"{wheel.name}: installs {startup_files[0]}, a .pth file that PYTHONPATH would not run"
        )


def pack_dependencies(context: BuildContext) -> None:
    tree = LayerTree()
    tree.add_directory(rootfs.SITE_PACKAGES.lstrip("/"))
    for name in sorted(name for name in context.inputs if name.startswith("site-")):
        tree.add_tree(context.inputs[name], "")
    info = tree.write(context.out / "layer.tar.gz", int(context.args["mtime"]))
    (context.out / "layer.json").write_bytes(canonical_json(info.to_json()))


RESOLVE = Recipe("resolve-lock", resolve, (lock,))
FETCH = Recipe("fetch-wheel", fetch, ())
INSTALL = Recipe("install-wheel", install, (rootfs, bytecode))
PACK = Recipe("pack-dependencies", pack_dependencies, (tarball, rootfs))


def closure(
    group: str, kind: str, project_sources: Derivation, target: Target, uv_version: str
) -> Derivation:
    return Derivation(
        name=f"closure-{group}",
        recipe=RESOLVE,
        args={"group": group, "kind": kind, "target": target_args(target), "uv": uv_version},
        inputs={"project": project_sources},
    )


def target_args(target: Target) -> dict[str, str]:
    return {
        "os": target.os,
        "architecture": target.architecture,
        "python": target.python,
        "python_full": target.python_full,
        "glibc": target.glibc,
    }


def read_closure(path: Path) -> list[LockedWheel]:
    return [LockedWheel.from_json(item) for item in json.loads((path / "closure.json").read_bytes())]


def wheel(locked: LockedWheel) -> Derivation:
    return Derivation(
        name=f"wheel-{locked.filename}",
        recipe=FETCH,
        args={"url": locked.url, "filename": locked.filename},
        fixed=FixedOutput(locked.sha256, "file", locked.filename),
    )


def installed(locked: LockedWheel, target: Target, compile_bytecode: bool) -> Derivation:
    return Derivation(
        name=f"site-{locked.name}-{locked.version}",
        recipe=INSTALL,
        args={
            "name": locked.name,
            "target": target_args(target),
            "installer": installer.__version__,
            "bytecode": bytecode.compiler() if compile_bytecode else None,
        },
        inputs={"wheel": wheel(locked)},
    )


def dependency_layer(group: str, closure: Derivation, installs: list[Derivation], mtime: int) -> Derivation:
    """The layer of `installs`; the closure they were chosen from is an input too, so that the store
    (and its garbage collector) knows what the plan read from it."""
    return Derivation(
        name=f"layer-deps-{group}",
        recipe=PACK,
        args={"mtime": mtime, "zlib": tarball.ZLIB_VERSION, "compress_level": tarball.COMPRESS_LEVEL},
        inputs={"closure": closure, **{install.name: install for install in installs}},
    )

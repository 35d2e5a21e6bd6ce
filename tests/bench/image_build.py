"""Benchmark: image build times (cold, no-op, one service, services/common) and image sizes.

    .venv/bin/python -m tests.bench.image_build [--only NAME ...] [--keep DIR]

Copies the sources a build reads to a temporary directory (the real tree is never edited), then times,
each in a fresh process: a cold build into an empty store (every wheel fetched from PyPI, installed,
compiled, packed), a no-op build, a rebuild after a one-line change to one service, a rebuild after a
one-line change to services/common, and `build --check`. Then lists each image's layers and sizes
(compressed as pushed; uncompressed as unpacked), and the full image's size with the pinned base.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from containers.declaration import load, lock_groups

REPO = Path(__file__).resolve().parents[2]
console = Console(width=120)


def copy_sources(into: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    shutil.copytree(REPO / "services", into / "services", ignore=ignore)
    shutil.copytree(REPO / "containers", into / "containers", ignore=ignore)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy2(REPO / name, into / name)
    return into


def build(project: Path, images: list[str], *extra: str) -> tuple[float, str]:
    command = [
        sys.executable,
        "-m",
        "containers",
        "build",
        "--project",
        str(project),
        "--out",
        str(project / "build"),
        "--revision",
        "bench",
        "--only",
        *images,
        *extra,
    ]
    started = time.monotonic()
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=1800,
    )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"build failed: {result.stderr.strip()}")
    return seconds, result.stdout.strip()


def touch(path: Path) -> None:
    path.write_text(path.read_text() + "\n# bench: one more line\n")


def uncompressed(path: Path) -> int:
    total = 0
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            total += len(chunk)
    return total


def mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def sizes(project: Path, base_size: int) -> Table:
    table = Table(title="image sizes (app image = own layers; full = on the pinned base)")
    distinct: dict[str, int] = {}
    for column in ("image", "layers", "dependencies", "code", "app, pushed", "app, unpacked", "full, pulled"):
        table.add_column(column, justify="right" if column != "image" else "left")
    out = project / "build" / "oci"
    for layout in sorted(out.iterdir()):
        index = json.loads((layout / "index.json").read_text())
        manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
        blobs = [layout / "blobs" / "sha256" / layer["digest"][7:] for layer in manifest["layers"]]
        pushed = sum(layer["size"] for layer in manifest["layers"])
        distinct.update({layer["digest"]: layer["size"] for layer in manifest["layers"]})
        table.add_row(
            layout.name,
            str(len(blobs)),
            mb(blobs[0].stat().st_size),
            mb(blobs[-1].stat().st_size),
            mb(pushed),
            mb(sum(uncompressed(blob) for blob in blobs)),
            mb(pushed + base_size),
        )
    table.caption = (
        f"all images together, each layer once (a registry's or a node's cost): {mb(sum(distinct.values()))}"
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", nargs="+", help="images to build (default: every declared image that exists)"
    )
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="image-bench-"))
    project = copy_sources(work / "project")
    declaration = load(project / "containers" / "images.toml", lock_groups(project / "uv.lock"))
    images = args.only or [
        spec.name
        for spec in declaration.images.values()
        if (project / "services" / spec.package / "__main__.py").is_file()
    ]
    one = "payment" if "payment" in images else images[0]
    one_package = declaration.images[one].package
    rows: list[tuple[str, float, str]] = []
    try:
        rows.append(("cold build (empty store, wheels from PyPI)", *build(project, images)))
        rows.append(("no-op build", *build(project, images)))
        touch(project / "services" / one_package / "__init__.py")
        rows.append((f"one-line change to {one}", *build(project, images)))
        touch(project / "services" / "common" / "__init__.py")
        rows.append(("one-line change to services/common", *build(project, images)))
        rows.append(("build --check (rebuild all, compare)", *build(project, images, "--check")))
    finally:
        if args.keep is None:
            console.print(f"[dim]work directory {work} (removed at exit)[/]")
    table = Table(title=f"image builds: {len(images)} images, {os.cpu_count()} cores")
    table.add_column("build")
    table.add_column("seconds", justify="right")
    table.add_column("steps")
    for what, seconds, line in rows:
        steps = re.sub(r" in [\d.]+s$", "", line)
        table.add_row(what, f"{seconds:.2f}", steps)
    console.print(table)
    console.print(sizes(project, sum(layer.size for layer in declaration.base.layers)))
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

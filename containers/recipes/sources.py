"""Source trees imported into the store (like Nix's path imports): a fixed output named by content.

The planner hashes the chosen files where they are; the recipe copies them into the store, where the
hash is checked again. Only the files' relative paths, executable bits and bytes count: a copy of the
project in another directory, owned by another user, imports to the same store path.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from containers.derivation import BuildContext, Derivation, FixedOutput, Recipe
from containers.hashing import files_hash, sha256_file

IGNORED_DIRS = {"__pycache__"}
IGNORED_SUFFIXES = (".pyc", ".pyo")


def copy_sources(context: BuildContext) -> None:
    root = Path(context.args["root"])
    for relative in context.args["files"]:
        target = context.out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target)
        if (root / relative).stat().st_mode & 0o111:
            target.chmod(0o755)


RECIPE = Recipe("sources", copy_sources, ())


def package_files(root: Path, relative_dir: str) -> list[str]:
    """Every file of a package directory that belongs in an image: no caches, no hidden files."""
    found = []
    for path in sorted((root / relative_dir).rglob("*")):
        relative = path.relative_to(root)
        if any(part in IGNORED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(IGNORED_SUFFIXES):
            found.append(relative.as_posix())
    return found


def import_sources(name: str, root: Path, files: Iterable[str]) -> Derivation:
    """A derivation whose output is a copy of `files` (relative to `root`), keyed by their content."""
    chosen = sorted(set(files))
    entries = [
        (relative, bool((root / relative).stat().st_mode & 0o111), sha256_file(root / relative))
        for relative in chosen
    ]
    return Derivation(
        name=name,
        recipe=RECIPE,
        args={"root": str(root.absolute()), "files": chosen},
        fixed=FixedOutput(files_hash(entries), "files"),
    )

"""Deterministic bytecode: `__pycache__/*.pyc` in unchecked-hash mode, named for the image's paths.

Unchecked-hash pycs carry a hash of their source instead of its mtime and are used without checking it
(the image's files never change), so they hold no timestamp; each is compiled with the path the source
has inside the image, so no build path leaks into tracebacks or the bytes. Compiling saves about a
second of every service start. The compiler is the building interpreter, so its exact version is an
input of every step that compiles: it must have the image's major.minor.
"""

from __future__ import annotations

import importlib.util
import py_compile
import sys
from pathlib import Path

from containers.errors import ContainersError


def compiler() -> dict[str, str]:
    """The compiling interpreter, as a derivation input."""
    return {
        "implementation": sys.implementation.name,
        "version": ".".join(str(part) for part in sys.version_info[:3]),
        "magic": importlib.util.MAGIC_NUMBER.hex(),
    }


def check_compiler(python: str) -> None:
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if sys.implementation.name != "cpython" or running != python:
        raise ContainersError(
            f"compiling bytecode for Python {python} needs a CPython {python} builder, not {running}"
        )


def compile_tree(root: Path, image_path: str) -> int:
    """Compile every .py under `root`, which holds what the image has at `image_path`; return the count."""
    compiled = 0
    for source in sorted(root.rglob("*.py")):
        if "__pycache__" in source.parts:
            continue
        relative = source.relative_to(root).as_posix()
        target = Path(importlib.util.cache_from_source(str(source)))
        try:
            py_compile.compile(
                str(source),
                cfile=str(target),
                dfile=f"{image_path.rstrip('/')}/{relative}",
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        except (py_compile.PyCompileError, SyntaxError, ValueError):
            continue  # a data file named .py (templates, Python 2 test fixtures): left as source, like pip
        compiled += 1
    return compiled

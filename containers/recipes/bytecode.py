"""Deterministic bytecode: `__pycache__/*.pyc` in unchecked-hash mode, named for the image's paths.

Unchecked-hash pycs carry a hash of their source instead of its mtime and are used without checking it
(the image's files never change), so they hold no timestamp; each is compiled with the path the source
has inside the image, so no build path leaks into tracebacks or the bytes. Compiling saves about a
second of every service start. The compiler is the building interpreter, so its exact version is an
input of every step that compiles: it must have the image's major.minor.

marshal's bytes depend on the compiling process: the order of frozenset constants on the string hash
seed, and its back-reference flags on objects' reference counts. So each tree is compiled in a fresh
interpreter with PYTHONHASHSEED=0, running nothing but the loop below, in sorted order.
"""

from __future__ import annotations

import importlib.util
import subprocess
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


# Runs in a fresh interpreter without site (-S: no .pth file changes its state); argv: tree, image path.
_COMPILE_LOOP = """
import importlib.util, py_compile, sys
from pathlib import Path
root, image_path, compiled = Path(sys.argv[1]), sys.argv[2].rstrip("/"), 0
for source in sorted(root.rglob("*.py")):
    if "__pycache__" in source.parts:
        continue
    try:
        py_compile.compile(
            str(source),
            cfile=importlib.util.cache_from_source(str(source)),
            dfile=f"{image_path}/{source.relative_to(root).as_posix()}",
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    except (py_compile.PyCompileError, SyntaxError, ValueError):
        continue  # a data file named .py (templates, Python 2 test fixtures): left as source, like pip
    compiled += 1
print(compiled)
"""


def compile_tree(root: Path, image_path: str) -> int:
    """Compile every .py under `root`, which holds what the image has at `image_path`; return the count."""
    result = subprocess.run(
        [sys.executable, "-S", "-c", _COMPILE_LOOP, str(root), image_path],
        env={"PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ContainersError(f"compiling bytecode under {root} failed: {result.stderr.strip()[-500:]}")
    return int(result.stdout)

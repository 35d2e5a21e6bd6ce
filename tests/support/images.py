"""Building the shop's images for tests and benchmarks, with the project's own builder."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 600


class BuildFailed(Exception):
    """`python -m containers build` failed; the message ends with its stderr."""


def build_images(out: Path, only: Sequence[str] = ()) -> dict[str, str]:
    """`python -m containers build [--only ...]` into `out` (its store in `out/store`): `images.json`'s
    service -> reference map; the layouts are in `out/oci/<service>`."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "containers",
            "build",
            *(["--only", *only] if only else []),
            "--out",
            str(out),
            "--store",
            str(out / "store"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise BuildFailed(f"building {', '.join(only) or 'the images'} failed:\n{result.stderr[-3000:]}")
    return json.loads((out / "images.json").read_text())  # type: ignore[no-any-return]

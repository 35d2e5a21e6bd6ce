"""Fixtures for the kubelet's tests: the payment image built by the project's builder (once per session,
into a temporary directory and store), an image store it is loaded into, and fast kubelet settings."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sim.images import ImageStore
from sim.kubelet import KubeletConfig

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 600
_addresses = itertools.count(1)


@dataclass(frozen=True)
class BuiltImage:
    layout: Path
    reference: str  # shopstack/payment@sha256:...


@pytest.fixture(scope="session")
def payment_image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    """The payment image, built with `python -m containers build --only payment` into tmp."""
    out = tmp_path_factory.mktemp("build")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "containers",
            "build",
            "--only",
            "payment",
            "--out",
            str(out),
            "--store",
            str(out / "store"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"building the payment image failed:\n{result.stderr[-3000:]}")
    reference = json.loads((out / "images.json").read_text())["payment"]
    return BuiltImage(out / "oci" / "payment", reference)


@pytest.fixture(scope="session")
def image_store(tmp_path_factory: pytest.TempPathFactory, payment_image: BuiltImage) -> ImageStore:
    """A store with the payment image loaded (its layer cache shared by the session's tests)."""
    store = ImageStore(tmp_path_factory.mktemp("images"))
    store.load(payment_image.layout)
    return store


@pytest.fixture
def kubelet(image_store: ImageStore, tmp_path: Path) -> KubeletConfig:
    return KubeletConfig(image_store, tmp_path / "logs", backoff_base=0.2, backoff_max=1.0, sample_period=0.1)


@pytest.fixture
def pod_ip() -> str:
    """A loopback address of the test's own, so that every pod can listen on 8080."""
    return f"127.61.{next(_addresses)}.1"

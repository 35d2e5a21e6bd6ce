"""The deploy's tests: a real moto server per module, reached by the real pyinfra CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.supervisor.process import free_port
from tests.support.moto import start_moto

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh AWS emulator for the module; its endpoint URL."""
    port = free_port(HOST)
    process = start_moto(tmp_path_factory.mktemp("moto"), HOST, port)
    try:
        yield f"http://{HOST}:{port}"
    finally:
        process.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path

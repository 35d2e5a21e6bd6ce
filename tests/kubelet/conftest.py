"""Fixtures for the kubelet's tests: fast kubelet settings over the session's image store, and a loopback
address per pod."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from containers.nodestore import ImageStore
from sim.kubelet import KubeletConfig

_addresses = itertools.count(1)


@pytest.fixture
def kubelet(image_store: ImageStore, tmp_path: Path) -> KubeletConfig:
    return KubeletConfig(image_store, tmp_path / "logs", backoff_base=0.2, backoff_max=1.0, sample_period=0.1)


@pytest.fixture
def pod_ip() -> str:
    """A loopback address of the test's own, so that every pod can listen on 8080."""
    return f"127.61.{next(_addresses)}.1"

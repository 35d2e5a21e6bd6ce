"""The AWS emulator: moto in server mode, on loopback, with the AWS-managed IAM policies loaded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sim.process import ManagedProcess, http_ok

DEFAULT_PORT = 4566
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def client_env(endpoint: str) -> dict[str, str]:
    """The `AWS_*` variables that point an SDK at the emulator."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, **CREDENTIALS}


def start_moto(log_dir: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> ManagedProcess:
    """Start moto's server and wait until it answers."""
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    process = ManagedProcess(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        log_dir / "moto.log",
        env=env,
    ).start()
    return process.wait_ready(lambda: http_ok(f"http://{host}:{port}/moto-api/"), timeout=60)

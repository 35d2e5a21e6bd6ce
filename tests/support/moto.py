"""A moto server of a test's own: the local cloud's AWS emulator (`python -m sim.awsemulator`, moto's server
with the admin route the EKS binding tells clusters' endpoints on), started as the supervisor starts it."""

from __future__ import annotations

import os
from pathlib import Path

from sim import aws
from sim.supervisor.process import ManagedProcess, http_ok


def start_moto(log_dir: Path, host: str = "127.0.0.1", port: int = aws.DEFAULT_PORT) -> ManagedProcess:
    """Start moto's server and wait until it answers."""
    process = ManagedProcess(
        "moto", aws.server_command(host, port), log_dir / "moto.log", env={**os.environ, **aws.SERVER_ENV}
    ).start()
    return process.wait_ready(lambda: http_ok(f"http://{host}:{port}{aws.HEALTH_PATH}"), timeout=60)

"""An interrupted `tox -e local` leaves nothing behind: the suite's run, stopped by SIGTERM (as tox and CI
stop it) or SIGINT (Ctrl-C) while its stage builds, takes the local cloud down with every process of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sim.supervisor.state import marked_processes, read_state
from tests.support.signals import interruptible
from tests.support.waiting import eventually

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("interrupt", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_suite_run_stops_its_local_cloud(tmp_path: Path, interrupt: signal.Signals) -> None:
    state = tmp_path / "cloud"
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "tests/integration", "--stage", "local", "-p", "no:cacheprovider"],
        cwd=REPO,
        env={
            **os.environ,
            "SHOPSTACK_SUITE_STATE": str(state),
            "SHOPSTACK_STAGE_LOGS": str(tmp_path / "logs"),
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=interruptible,
    )

    try:
        # the build begins once the cloud is up: interrupted while it builds
        eventually(
            lambda: (tmp_path / "logs" / "local" / "build.log").exists(), timeout=120, what="the build"
        )
        assert list(marked_processes(state)), "the cloud runs no process"
        run.send_signal(interrupt)
        output, _ = run.communicate(timeout=180)
        left_running, left_record = list(marked_processes(state)), read_state(state)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        down = [sys.executable, "-m", "sim", "down", "--state-dir", str(state)]
        subprocess.run(down, capture_output=True, timeout=120, check=False)
    assert run.returncode != 0
    assert left_running == [], output[-3000:]
    assert left_record is None, "the cloud's record is left behind"
    assert "local stage: up" in output

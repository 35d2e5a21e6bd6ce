"""Child processes the local cloud and the tests start: own session, log file, readiness, clean stop.

Every process runs in a new session so that stopping it also stops whatever it spawned: SIGTERM to the
group, then SIGKILL to the group after a grace period. Nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

LOG_TAIL_LINES = 20


class ProcessFailed(RuntimeError):
    """A managed process exited or did not become ready; the message ends with its last log lines."""


_handed_out: set[tuple[str, int]] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` now and was not handed out before by this process.

    Ports are often taken some time after they are chosen (a service started later), so a port the OS
    reports free may already be promised to someone: each is handed out once.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if (host, port) not in _handed_out:
            _handed_out.add((host, port))
            return port


def tcp_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code < 400
    except httpx.HTTPError:
        return False


class ManagedProcess:
    """One child process with its output in `log_path`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout: float = 30.0) -> ManagedProcess:
        """Poll `ready` until it holds; raise `ProcessFailed` if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.running():
                raise ProcessFailed(f"{self.name} exited with {self.returncode()}{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{self.name} not ready after {timeout:.0f}s{self.log_tail()}")
            time.sleep(0.05)
        return self

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def signal(self, sig: int) -> None:
        """Send `sig` to the process's whole group."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the group, wait up to `grace` seconds, then SIGKILL it; return the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # strays that outlived their leader
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the group at once, as a crash would."""
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return ""
        return "\n--- last lines of " + str(self.log_path) + " ---\n" + "\n".join(tail)

"""Running a command inside a running container, as `kubectl exec` asks the kubelet to.

The command runs in the container's own context, resolved exactly as the container's start was: its
environment (the image's, the pod's declared variables, `HOSTNAME`, `BIND_HOST`), its working dir, and its
image's paths and `python` translated (`RunSpec.rewrite_argv`). It runs in a session of its own, so that
`kill()` reaches everything it started (the wire kills the session when the command exits, so what it left
running in the background ends with it: nothing outlives the pod). Without a tty its stdout and stderr
are separate pipes; with a tty all three streams are one pseudo-terminal (stderr merged into stdout).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import signal
from collections.abc import Sequence

from sim.kubelet.container import Container

READ_CHUNK = 32 * 1024


class ExecError(Exception):
    """The command cannot run: the container is not running, or the program cannot be started."""


class ExecProcess:
    """A command running in a container: its streams (None where not asked for), its exit, its kill."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        stdin: asyncio.StreamWriter | None,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader | None,
        closers: Sequence[asyncio.BaseTransport] = (),
    ) -> None:
        self.process = process
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._closers = list(closers)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait(self) -> int:
        """The exit code (128 + N when killed by signal N, as a container runtime reports it)."""
        code = await self.process.wait()
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        """SIGKILL the command's whole session (what it started too)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def close(self) -> None:
        """Release the streams (after the session is gone)."""
        for transport in self._closers:
            transport.close()


async def start_exec(
    container: Container, command: Sequence[str], stdin: bool = False, tty: bool = False
) -> ExecProcess:
    """Start `command` in `container`'s context; `ExecError` if it is not running or cannot start."""
    launch = container.launch
    if not container.running() or launch is None:
        raise ExecError(f'container not found ("{container.spec.name}")')
    if not command:
        raise ExecError("you must specify at least one command for the container")
    argv = launch.runspec.rewrite_argv(list(command))
    try:
        if tty:
            return await _start_with_tty(argv, launch.env, str(launch.cwd), stdin)
        return await _start_with_pipes(argv, launch.env, str(launch.cwd), stdin)
    except OSError as err:
        raise ExecError(f"failed to start {command[0]!r} in container {container.spec.name}: {err}") from err


async def _start_with_pipes(argv: list[str], env: dict[str, str], cwd: str, stdin: bool) -> ExecProcess:
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        limit=READ_CHUNK,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    return ExecProcess(process, process.stdin, process.stdout, process.stderr)


async def _start_with_tty(argv: list[str], env: dict[str, str], cwd: str, stdin: bool) -> ExecProcess:
    """One pseudo-terminal for all three streams; the command's output is read from its master side."""
    master, slave = pty.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env={"TERM": "xterm", **env},
            cwd=cwd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
    except OSError:
        os.close(master)
        raise
    finally:
        os.close(slave)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_CHUNK)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(master, "rb", buffering=0)
    )
    closers: list[asyncio.BaseTransport] = [read_transport]
    writer: asyncio.StreamWriter | None = None
    if stdin:
        write_transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()),
            os.fdopen(os.dup(master), "wb", buffering=0),
        )
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
        closers.append(write_transport)
    return ExecProcess(process, writer, reader, None, closers)

"""Run one probe or hook handler against a container: httpGet, tcpSocket, exec or (a hook) sleep, with a
timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from sim.kubelet.spec import ConfigError, ContainerSpec, Handler

OUTPUT_LIMIT = 10 * 1024


async def run_handler(
    handler: Handler,
    container: ContainerSpec,
    pod_ip: str,
    env: Mapping[str, str],
    cwd: Path,
    seconds: float,
    rewrite: Callable[[list[str]], list[str]] = list,
) -> tuple[bool, str]:
    """(succeeded, message) of one run of `handler`; a timeout is a failure.

    `rewrite` translates an exec command written for the image (its `python`, its paths) for the host.
    """
    try:
        if handler.sleep_seconds is not None:
            await asyncio.sleep(handler.sleep_seconds)
            return True, ""
        if handler.exec_command is not None:
            return await _exec(rewrite(handler.exec_command), env, cwd, seconds)
        port = container.port_number(handler.port)
        host = handler.host or pod_ip
        if handler.tcp:
            return await _tcp(host, port, seconds)
        return await _http(handler, host, port, seconds)
    except ConfigError as err:
        return False, str(err)


async def _http(handler: Handler, host: str, port: int, seconds: float) -> tuple[bool, str]:
    scheme = "https" if handler.http_scheme == "HTTPS" else "http"
    url = f"{scheme}://{host}:{port}{handler.http_path or '/'}"
    headers = {"User-Agent": "kube-probe/1.30", **handler.http_headers}
    try:
        async with httpx.AsyncClient(timeout=seconds, verify=False, trust_env=False) as client:
            response = await client.get(url, headers=headers)
    except httpx.HTTPError as err:
        return False, f"Get {url!r}: {type(err).__name__}: {err}"
    if 200 <= response.status_code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {response.status_code}"


async def _tcp(host: str, port: int, seconds: float) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(seconds):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as err:
        return False, f"dial tcp {host}:{port}: {err}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, ""


async def _exec(argv: list[str], env: Mapping[str, str], cwd: Path, seconds: float) -> tuple[bool, str]:
    """Run `argv` in the container's environment, in a session of its own killed on timeout."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as err:
        return False, f"exec {argv[:1]}: {err}"
    try:
        async with asyncio.timeout(seconds):
            output, _ = await process.communicate()
    except TimeoutError:
        return False, f"command {argv!r} timed out after {seconds:g}s"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await process.wait()
    text = output[:OUTPUT_LIMIT].decode(errors="replace")
    return process.returncode == 0, text

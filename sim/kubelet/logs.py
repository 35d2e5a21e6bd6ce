"""A container's log files: one per instance (`<restartCount>.log`), the current and the previous kept.

The process writes straight to its file (no pipe through the kubelet, so a kubelet restart does not
break a container's output). `kubectl logs` reads the current file, `--previous` the one before,
`--tail` the last lines, and `-f` follows the current file until its instance ends.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

FOLLOW_POLL = 0.1


class ContainerLogs:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, instance: int) -> Path:
        return self.directory / f"{instance}.log"

    def open_instance(self, instance: int) -> int:
        """A file descriptor for instance `instance`'s output; older than the previous are deleted."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for old in self.directory.glob("*.log"):
            if old.stem.isdigit() and int(old.stem) < instance - 1:
                old.unlink(missing_ok=True)
        return os.open(self.path(instance), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def instances(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*.log") if p.stem.isdigit())

    def read(self, previous: bool = False, tail: int | None = None) -> str:
        """The current (or previous) instance's log; `LookupError` when there is none."""
        instances = self.instances()
        wanted = instances[-2] if previous and len(instances) > 1 else None
        if not previous and instances:
            wanted = instances[-1]
        if wanted is None:
            raise LookupError("previous terminated container not found" if previous else "no log yet")
        text = self.path(wanted).read_text(errors="replace")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail > 0 else ""
        return text

    async def follow(self, running: Callable[[], bool], max_seconds: float = 3600.0) -> AsyncIterator[str]:
        """The current instance's log from its start, then what it writes until it stops running."""
        instances = self.instances()
        if not instances:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        with self.path(instances[-1]).open("r", errors="replace") as stream:
            while loop.time() < deadline:
                alive = running()
                chunk = stream.read()
                if chunk:
                    yield chunk
                elif not alive:
                    return
                else:
                    await asyncio.sleep(FOLLOW_POLL)

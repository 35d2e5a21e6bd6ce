"""The record of a running local cloud (`STATE/cloud.json`) and how its processes are told apart.

`python -m sim up` exits while its components run on, so `status` and `down` learn what runs from this
file: each component's pid, the process's start time (a pid the kernel reused for another process is not
ours), its address, health URL, listening ports and log. The file is written atomically.

Every process of a cloud carries `SIM_CLOUD_STATE=<state dir>` in its environment (children inherit it;
the kubelet hands it on to pods), so `down` also finds what a component spawned after that component
was killed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MARKER = "SIM_CLOUD_STATE"
STATE_FILE = "cloud.json"


@dataclass
class ComponentRecord:
    """One component as `up` left it: `state` is started, skipped or failed (then `reason` says why)."""

    name: str
    state: str
    address: str = ""
    health_url: str = ""
    ports: list[int] = field(default_factory=list)
    pid: int | None = None
    start_time: int | None = None
    log: str = ""
    reason: str = ""


@dataclass
class CloudState:
    state_dir: Path
    components: list[ComponentRecord] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.state_dir / STATE_FILE

    def write(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{STATE_FILE}.{os.getpid()}")
        data = {"components": [asdict(c) for c in self.components]}
        partial.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(partial, self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def running(self) -> list[ComponentRecord]:
        """The components whose own process is alive."""
        return [c for c in self.components if c.pid is not None and alive(c.pid, c.start_time)]


class StateDirUnusable(Exception):
    """The state directory cannot hold a cloud; the message is one line naming it and why."""


def check_state_dir(state_dir: Path) -> None:
    """Refuse a state directory that is a file, or that exists but cannot be written to. One that does
    not exist yet is fine: `up` creates it (and says so in one line if it cannot)."""
    if state_dir.exists() and not state_dir.is_dir():
        raise StateDirUnusable(f"the state dir {state_dir} is a file, not a directory")
    if state_dir.is_dir() and not os.access(state_dir, os.W_OK | os.X_OK):
        raise StateDirUnusable(f"the state dir {state_dir} is not writable")
    for parent in state_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise StateDirUnusable(f"the state dir {state_dir} cannot be made: {parent} is a file")
            break


def read_state(state_dir: Path) -> CloudState | None:
    """The recorded cloud of `state_dir`, or None when there is none (or the record is unreadable)."""
    try:
        data: dict[str, Any] = json.loads((state_dir / STATE_FILE).read_text())
        components = [ComponentRecord(**c) for c in data["components"]]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return CloudState(state_dir, components)


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; the command name may hold spaces and parentheses."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since boot; None when it does not exist."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def alive(pid: int, started: int | None = None) -> bool:
    """Whether `pid` runs (a zombie does not) and, given `started`, is the process that started then."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def marked_processes(state_dir: Path) -> Iterator[int]:
    """The live processes whose environment names `state_dir` as their cloud."""
    needle = f"{MARKER}={state_dir.resolve()}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and alive(int(entry.name)):
            yield int(entry.name)

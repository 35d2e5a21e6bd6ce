"""Memory and CPU of a container: every process of its session, read from /proc (Linux).

A container's processes share the session its first process opened, as a cgroup would hold them. CPU
time counts the live processes' own time plus what they reaped from exited children; a child that
exits unreaped by its parent is missed, which is close enough for an autoscaler.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class Sample:
    rss_bytes: int
    cpu_seconds: float
    pids: tuple[int, ...]


def _stat_fields(pid: str) -> list[str] | None:
    try:
        text = (PROC / pid / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces
    return text[text.rfind(")") + 2 :].split()


def session_pids(session: int) -> list[int]:
    """The live processes of session `session` (zombies excluded)."""
    found = []
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        # after the name: state(0) ppid(1) pgrp(2) session(3)
        if fields is not None and fields[0] != "Z" and int(fields[3]) == session:
            found.append(int(entry))
    return found


def sample(session: int) -> Sample:
    rss = 0
    cpu_ticks = 0
    pids = []
    for pid in session_pids(session):
        fields = _stat_fields(str(pid))
        if fields is None:
            continue
        try:
            resident = int((PROC / str(pid) / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        pids.append(pid)
        rss += resident * PAGE
        # utime(11) stime(12) cutime(13) cstime(14), counted after the name
        cpu_ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return Sample(rss, cpu_ticks / TICKS, tuple(pids))

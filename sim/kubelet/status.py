"""Container and pod status in the shape of the Kubernetes API (a model, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class State:
    kind: Literal["waiting", "running", "terminated"]
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.kind == "terminated":
            body["exitCode"] = self.exit_code if self.exit_code is not None else 0
        if self.reason:
            body["reason"] = self.reason
        if self.message:
            body["message"] = self.message
        if self.started_at and self.kind != "waiting":
            body["startedAt"] = timestamp(self.started_at)
        if self.finished_at and self.kind == "terminated":
            body["finishedAt"] = timestamp(self.finished_at)
        return {self.kind: body}


def terminated(exit_code: int, started_at: datetime | None, oom: bool, message: str | None = None) -> State:
    """How a finished process is reported: OOMKilled, Completed (exit 0) or Error."""
    reason = "OOMKilled" if oom else ("Completed" if exit_code == 0 else "Error")
    return State("terminated", reason, message, exit_code, started_at, now())


def exit_code(returncode: int) -> int:
    """A process's exit status as a container runtime reports it: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class ContainerStatus:
    name: str
    image: str
    image_id: str = ""
    container_id: str = ""
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    state: State = field(default_factory=lambda: State("waiting", "ContainerCreating"))
    last_state: State | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state.to_api(),
            "lastState": self.last_state.to_api() if self.last_state else {},
        }
        if self.container_id:
            body["containerID"] = self.container_id
        return body


@dataclass
class Conditions:
    """Pod conditions, remembering when each last changed, with the reason and message of a False one."""

    values: dict[str, tuple[bool, datetime]] = field(default_factory=dict)
    reasons: dict[str, tuple[str, str]] = field(default_factory=dict)

    def set(self, kind: str, value: bool, reason: str = "", message: str = "") -> None:
        if kind not in self.values or self.values[kind][0] != value:
            self.values[kind] = (value, now())
        self.reasons[kind] = (reason, message)

    def to_api(self) -> list[dict[str, Any]]:
        out = []
        for kind, (value, moment) in self.values.items():
            condition: dict[str, Any] = {
                "type": kind,
                "status": "True" if value else "False",
                "lastProbeTime": None,
                "lastTransitionTime": timestamp(moment),
            }
            reason, message = self.reasons.get(kind, ("", ""))
            condition.update({k: v for k, v in (("reason", reason), ("message", message)) if v})
            out.append(condition)
        return out


def ready_condition(
    containers: Sequence[ContainerStatus], gates: Sequence[str], conditions: Mapping[str, str]
) -> tuple[bool, str, str]:
    """The pod's Ready condition as the kubelet computes it: its containers ready and every readiness
    gate's condition (`conditions`: status by type, set by others) True; else the reason and message."""
    unready = [c.name for c in containers if not c.ready]
    if not containers or unready:
        return False, "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    messages = []
    for gate in gates:
        if gate not in conditions:
            messages.append(f'corresponding condition of pod readiness gate "{gate}" does not exist.')
        elif conditions[gate] != "True":
            messages.append(
                f'the status of pod readiness gate "{gate}" is not "True", but {conditions[gate]}'
            )
    if messages:
        return False, "ReadinessGatesNotReady", ", ".join(messages)
    return True, "", ""


def phase(statuses: Sequence[ContainerStatus], will_restart: bool) -> str:
    """The pod phase from its containers' states."""
    kinds = [s.state.kind for s in statuses]
    if any(k == "running" for k in kinds):
        return "Running"
    if statuses and all(k == "terminated" for k in kinds) and not will_restart:
        failed = any(s.state.exit_code != 0 for s in statuses)
        return "Failed" if failed else "Succeeded"
    if any(s.restart_count or s.last_state for s in statuses):
        return "Running"
    return "Pending"

"""Waiting for rollouts, and the ad-hoc operations that start one: scale and restart a service.

`wait_for_rollouts` always runs (a wait is no state): it polls the Deployments and StatefulSets of the
rendered objects until each is rolled out (observedGeneration caught up; updated, ready and available
replicas all at the desired count; no old replicas left), printing a line per workload as it finishes
and, on a terminal, a rich progress bar. The bar refreshes only when the wait polls, never from a thread
of its own, because pyinfra runs under gevent. A workload that is not rolled out within the timeout fails
the run with one line naming it, and as the detail the Warning events of it and its pods (FailedScheduling,
Unhealthy, ...) and its containers' waiting reasons (ErrImagePull, CrashLoopBackOff). A rollout that can
never succeed fails as soon as that is certain, not at the timeout: a pod of the workload's current
revision whose container cannot be created, whose image does not exist, or that crashed CRASH_LOOP_RESTARTS
times (see `permanent_failure`). In the deploy, call it with `_if=always`, so that the plan lists it as a
conditional step rather than a change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.core_v1 import Event, Pod
from pyinfra.api.command import FunctionCommand
from pyinfra.api.exceptions import OperationError
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State
from pyinfra.context import host
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from infra.cloud import cloud_of
from infra.k8s.apply import DescribedCommand
from infra.k8s.facts import LiveObjects, object_key, resource_class

Obj = dict[str, Any]
log = logging.getLogger("pyinfra")

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
POLL_SECONDS = 1.0
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
#: how many Warning events to show for a workload that did not roll out
EVENTS_SHOWN = 8

Workload = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


def always() -> bool:
    """`_if=always`: the step runs on every deploy, and the plan shows it as conditional."""
    return True


def workloads_of(objects: list[Obj]) -> list[Workload]:
    return [
        (o["apiVersion"], o["kind"], o["metadata"].get("namespace") or "", o["metadata"]["name"])
        for o in objects
        if o.get("kind") in WORKLOAD_KINDS
    ]


def rollout_state(obj: Obj) -> tuple[bool, str]:
    """Whether a Deployment or StatefulSet is rolled out, and a short "ready/desired" note."""
    spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    desired = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    available = int(status.get("availableReplicas", ready) or 0)
    counts = (int(status.get("updatedReplicas") or 0), ready, available)
    done = (
        int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
        and all(n == desired for n in counts)
        and int(status.get("replicas") or 0) <= desired
    )
    return done, f"{available}/{desired} available"


def _name(workload: Workload) -> str:
    _, kind, namespace, name = workload
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _read(client: Client, workload: Workload) -> Obj:
    api_version, kind, namespace, name = workload
    found = client.get(resource_class(api_version, kind), name, namespace=namespace or None)
    return found.to_dict()  # type: ignore[no-any-return]


#: container waiting reasons that are a normal part of starting
STARTING = frozenset({"ContainerCreating", "PodInitializing"})
#: waiting reasons that no retry of the kubelet's can cure: the pod spec or its image must change
NEVER_STARTS = frozenset(
    {"CreateContainerError", "CreateContainerConfigError", "InvalidImageName", "ErrImageNeverPull"}
)
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff"})
#: restarts after which a crash-looping container is taken to crash for good
CRASH_LOOP_RESTARTS = 3
#: how long a "never starts" reason must last before the rollout is given up (a ConfigMap the same deploy
#: applies may reach the kubelet a moment after the pod)
PERMANENT_AFTER_SECONDS = 5.0
REVISION = "deployment.kubernetes.io/revision"


def permanent_failure(pod: Obj) -> str | None:
    """Why `pod` can never become ready, as `pod P container C: Reason: message`, or None.

    A container that cannot be created (CreateContainerError...), whose image is not found, or that has
    crashed CRASH_LOOP_RESTARTS times or more; or a pod the kubelet failed to start at all."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    name = meta.get("name", "")
    if status.get("phase") == "Failed" and status.get("reason"):
        return f"pod {name}: {status['reason']}: {status.get('message', '')}".rstrip(": ")
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason, message = waiting.get("reason", ""), waiting.get("message", "")
        restarts = int(container.get("restartCount") or 0)
        crashed = reason == "CrashLoopBackOff" and restarts >= CRASH_LOOP_RESTARTS
        missing_image = reason in PULL_FAILURES and "not found" in message
        if reason in NEVER_STARTS or crashed or missing_image:
            if crashed:
                last = (container.get("lastState") or {}).get("terminated") or {}
                message = f"{restarts} restarts, last {last.get('reason', 'exit')}"
                message += f" (exit code {last['exitCode']})" if "exitCode" in last else ""
            return f"pod {name} container {container.get('name')}: {reason}: {message}".rstrip(": ")
    return None


def current_pods(client: Client, workload: Workload, obj: Obj) -> list[Obj]:
    """The pods of the workload's newest revision: old pods may crash on their way out."""
    _, kind, namespace, _ = workload
    match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not match:
        return []
    if kind == "StatefulSet":
        revision = (obj.get("status") or {}).get("updateRevision")
        labels = {**match, "controller-revision-hash": revision} if revision else None
    else:
        wanted = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION)
        newest = [
            rs.metadata
            for rs in client.list(ReplicaSet, namespace=namespace, labels=match)
            if rs.metadata and (rs.metadata.annotations or {}).get(REVISION) == wanted
        ]
        template_hash = (newest[0].labels or {}).get("pod-template-hash") if newest else None
        labels = {**match, "pod-template-hash": template_hash} if wanted and template_hash else None
    if labels is None:
        return []
    return [pod.to_dict() for pod in client.list(Pod, namespace=namespace, labels=labels)]


def why_not_ready(client: Client, workload: Workload, obj: Obj) -> list[str]:
    """What explains a stuck rollout: the Warning events of the workload, its ReplicaSets and its pods
    (`reason: message`), and the pods' containers that wait or crash (reasons such as ErrImagePull, which
    `kubectl describe pod` shows from the pod's status)."""
    _, kind, namespace, name = workload
    match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pods = list(client.list(Pod, namespace=namespace, labels=match)) if match else []
    pod_names = {p.metadata.name for p in pods if p.metadata}
    lines: list[str] = []
    for event in client.list(Event, namespace=namespace):
        involved = event.involvedObject
        about = (
            (involved.kind == "Pod" and involved.name in pod_names)
            or (involved.kind == kind and involved.name == name)
            or (involved.kind == "ReplicaSet" and str(involved.name).startswith(f"{name}-"))
        )
        line = f"{involved.kind} {involved.name}: {event.reason}: {event.message}"
        if event.type == "Warning" and about and line not in lines:
            lines.append(line)
    for pod in pods:
        pod_name = pod.metadata.name if pod.metadata else ""
        statuses = (pod.status.containerStatuses if pod.status else None) or []
        for container in statuses:
            state = container.state
            if state and state.waiting and state.waiting.reason not in STARTING:
                detail = f"{state.waiting.reason}: {state.waiting.message or ''}".rstrip(": ")
                lines.append(
                    f"Pod {pod.metadata.name if pod.metadata else ''}: {container.name} waiting: {detail}"
                )
            elif state and state.terminated and state.terminated.exitCode:
                reason = state.terminated.reason or f"exit code {state.terminated.exitCode}"
                lines.append(f"Pod {pod_name}: {container.name} {reason}")
    return lines[-EVENTS_SHOWN:]


class PermanentFailures:
    """The permanent failures seen so far: a failure counts once it has lasted PERMANENT_AFTER_SECONDS."""

    def __init__(self) -> None:
        self.first_seen: dict[str, float] = {}  # "pod P container C" -> when its failure was first seen

    def of(self, client: Client, workload: Workload, obj: Obj) -> str | None:
        for pod in current_pods(client, workload, obj):
            reason = permanent_failure(pod)
            if reason is not None:
                since = self.first_seen.setdefault(reason.split(": ")[0], time.monotonic())
                if time.monotonic() - since >= PERMANENT_AFTER_SECONDS:
                    return reason
        return None


def _wait(state: State, host: Host, workloads: list[Workload], timeout: float) -> bool:
    client = cloud_of(host).kube()
    if client is None:
        host.log_styled("no cluster to wait for", fg="red", log_func=log.error)
        return False
    console = Console(stderr=True, highlight=False)
    deadline = time.monotonic() + timeout
    pending = list(workloads)
    last: dict[Workload, Obj] = {}
    permanent = PermanentFailures()
    failed: dict[Workload, str] = {}
    columns = (TextColumn("rollouts"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, auto_refresh=False, transient=True) as progress:
        task = progress.add_task("rollouts", total=len(workloads))
        while pending and not failed:
            for workload in list(pending):
                try:
                    last[workload] = _read(client, workload)
                except ApiError as err:
                    if err.status.code != 404:
                        raise
                    continue
                done, note = rollout_state(last[workload])
                if done:
                    pending.remove(workload)
                    progress.advance(task)
                    finished = len(workloads) - len(pending)
                    console.print(
                        f"    rolled out {_name(workload)} ({note}), {finished} of {len(workloads)}"
                    )
                elif reason := permanent.of(client, workload, last[workload]):
                    failed[workload] = reason
                    pending.remove(workload)
            progress.refresh()
            if not pending or failed or time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
    for workload, reason in failed.items():
        host.log_styled(f"{_name(workload)} cannot roll out: {reason}", fg="red", log_func=log.error)
        for line in why_not_ready(client, workload, last[workload]):
            log.error(f"{host.print_prefix}    {line}")
    for workload in pending:
        note = rollout_state(last[workload])[1] if workload in last else "not found"
        if failed:
            console.print(f"    {_name(workload)} was still rolling out ({note})")
            continue
        host.log_styled(
            f"{_name(workload)} did not roll out within {timeout:.0f} s ({note})",
            fg="red",
            log_func=log.error,
        )
        for line in why_not_ready(client, workload, last.get(workload, {})):
            log.error(f"{host.print_prefix}    {line}")
    return not pending and not failed


@operation(is_idempotent=False)
def wait_for_rollouts(objects: list[Obj], timeout: float) -> Generator[FunctionCommand, None, None]:
    """Wait until every Deployment and StatefulSet of `objects` is rolled out, at most `timeout` seconds."""
    workloads = workloads_of(objects)
    if not workloads:
        host.noop("no workloads to wait for")
        return
    yield DescribedCommand(f"wait for {len(workloads)} rollouts", _wait, (workloads, timeout))


def _deployment(name: str) -> tuple[Workload, Obj]:
    namespace = cloud_of(host).settings.namespace
    live = host.get_fact(LiveObjects, kinds=[["apps/v1", "Deployment"]])
    workload: Workload = ("apps/v1", "Deployment", namespace, name)
    obj = live.get(object_key({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(workload)}))
    if obj is None:
        raise OperationError(f"no Deployment {namespace}/{name} made by the deploy: deploy it first")
    return workload, obj


def _meta(workload: Workload) -> Obj:
    return {"namespace": workload[2], "name": workload[3]}


def _set_scale(state: State, host: Host, workload: Workload, replicas: int) -> None:
    client = cloud_of(host).kube()
    assert client is not None, "the Deployment was read from this cluster"
    _, _, namespace, name = workload
    client.patch(
        Deployment.Scale,
        name,
        {"spec": {"replicas": replicas}},
        namespace=namespace,
        field_manager="shopstack-scale",
    )


def _restart(state: State, host: Host, workload: Workload) -> None:
    client = cloud_of(host).kube()
    assert client is not None, "the Deployment was read from this cluster"
    _, _, namespace, name = workload
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    client.patch(Deployment, name, patch, namespace=namespace, field_manager="shopstack-restart")


@operation()
def scale(deployment: str, replicas: int, timeout: float = 300) -> Generator[FunctionCommand, None, None]:
    """Set the deploy's Deployment `deployment` to `replicas` (its scale subresource), then wait for it."""
    if replicas < 0:
        raise OperationError(f"replicas must be 0 or more, got {replicas}")
    workload, obj = _deployment(deployment)
    if int((obj.get("spec") or {}).get("replicas", 1)) == replicas:
        host.noop(f"{_name(workload)} has {replicas} replicas")
        return
    yield DescribedCommand(f"scale {_name(workload)} to {replicas}", _set_scale, (workload, replicas))
    yield DescribedCommand(f"wait for {_name(workload)}", _wait, ([workload], timeout))


@operation(is_idempotent=False)
def restart(deployment: str, timeout: float = 300) -> Generator[FunctionCommand, None, None]:
    """Restart the pods of the deploy's Deployment `deployment` as `kubectl rollout restart` does, then
    wait for the rollout."""
    workload, _ = _deployment(deployment)
    yield DescribedCommand(f"restart {_name(workload)}", _restart, (workload,))
    yield DescribedCommand(f"wait for {_name(workload)}", _wait, ([workload], timeout))

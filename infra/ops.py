"""Ad-hoc operations on a deployed shop, run from the command line like any pyinfra operation:

    pyinfra inventory/local.py infra.ops.set_flag flag=paymentFailure value=on
    pyinfra inventory/local.py infra.ops.set_flag flag=paymentFailure value=off
    pyinfra inventory/local.py infra.ops.scale service=cart replicas=3
    pyinfra inventory/local.py infra.ops.restart service=cart
    pyinfra inventory/local.py infra.ops.rollback service=cart
    pyinfra inventory/local.py infra.ops.load users=20                # the load generator's shoppers
    pyinfra inventory/local.py infra.ops.set_flag flag=loadGeneratorFloodHomepage value=100
    pyinfra inventory/local.py fact infra.aws.record.LatestRecord     # the last deploy's record

A flag, a replica count or the load generator's shoppers set here is kept in the state bucket
(`overrides.json`) and applied by every later deploy, so a deploy does not undo what an operator chose;
`value=off` clears a flag, `users=0` stops the load (its web UI stays up). The change
itself is applied at once: the flags ConfigMap (the services reload it), or the service's Deployments and
HPA as the model renders them with the new count (an HPA's minimum, for the services it scales). A
rollback releases a blue-green service's previous run (what its idle colour holds) exactly as a deploy
releases a new one, and is kept too: later deploys do not release the rolled-back image again.

An argument that names nothing the shop has (a service, a flag; the nearest one is suggested), a flag value
of the wrong type or a count out of range is refused in one line naming it, before any change.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import replace
from functools import wraps
from typing import Any, ParamSpec

from pyinfra.api.command import FunctionCommand
from pyinfra.api.exceptions import OperationValueError
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State
from pyinfra.context import host

from infra.cloud import cloud_of
from infra.desired import Overrides, current_objects, live_workloads, model_config, write_overrides
from infra.failure import stop
from infra.k8s import apply as k8s_apply
from infra.k8s import release, rollout
from infra.k8s.facts import Obj
from infra.k8s.release import plan_releases, plan_rollback
from infra.known import flag_named, flag_setting, replica_count, unknown
from infra.model import SERVICE_NAMES, render
from infra.model.load_generator import MAX_USERS
from infra.model.release import coloured
from infra.model.services import ALB_BACKEND, LOAD_GENERATOR
from services.common.flag_contract import NUMERIC_FLAGS

NAME_LABEL = "app.kubernetes.io/name"
#: what a replica count is rendered into: the Deployment (at creation, for HPA targets) and its HPA's bounds
SCALED_KINDS = ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget")
OFF = ("off", "false", "0", "no")
ON = ("on", "true", "yes")

Args = ParamSpec("Args")
Commands = Generator[FunctionCommand, None, None]


def _refusing(op: Callable[Args, Commands]) -> Callable[Args, Commands]:
    """`op`, failed with the one line of an OperationValueError it raises (a bad argument), as
    `infra.failure` says: pyinfra would print the exception's traceback."""

    @wraps(op)
    def refusing(*args: Args.args, **kwargs: Args.kwargs) -> Commands:
        try:
            yield from op(*args, **kwargs)
        except OperationValueError as err:
            yield stop(str(err))

    return refusing


def flag_value(flag: str, value: object) -> bool | float:
    """`value` as the flag takes it: on/off for a boolean flag, a number >= 0 (or off) for a numeric one."""
    try:
        known = flag_named(flag)
    except ValueError as err:
        raise OperationValueError(str(err)) from None
    text = str(value).strip().lower()
    if known in NUMERIC_FLAGS:
        if text in OFF:
            return 0
        try:
            return flag_setting(known, float(text))
        except ValueError:
            raise OperationValueError(f"flag {flag} takes a number >= 0 or off, not {value!r}") from None
    if text in ON or text in OFF:
        return text in ON
    raise OperationValueError(f"flag {flag} takes on or off, not {value!r}")


def _save(state: State, host: Host, overrides: dict[str, Any]) -> None:
    write_overrides(cloud_of(host), overrides)


def _overridden(section: str, key: str, value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The current overrides and the overrides with `section.key` set to `value`."""
    current = host.get_fact(Overrides, bucket=cloud_of(host).settings.state_bucket)
    updated = {**current, section: {**current.get(section, {}), key: value}}
    return current, updated


@operation()
@_refusing
def set_flag(flag: str, value: str = "on") -> Commands:
    """Set a failure flag for every later deploy, and in the running shop now."""
    current, updated = _overridden("flags", flag, flag_value(flag, value))
    if updated != current:
        yield FunctionCommand(_save, (updated,), {})
    objects = render(model_config(cloud_of(host).settings, updated))
    flags = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "flags"]
    yield from k8s_apply.apply._inner(objects=flags)


def replicas_value(replicas: object) -> int:
    """`replicas` as `scale` takes it: a whole number from 1 to `infra.known.MOST_REPLICAS`."""
    try:
        return replica_count(replicas)
    except ValueError as err:
        raise OperationValueError(str(err)) from None


@operation()
@_refusing
def scale(service: str, replicas: int) -> Commands:
    """Run `replicas` pods of `service`, now and after every later deploy."""
    known_service(service)
    current, updated = _overridden("replicas", service, replicas_value(replicas))
    if updated != current:
        yield FunctionCommand(_save, (updated,), {})
    settings = cloud_of(host).settings
    objects = _of_service(current_objects(host, settings, updated)[0], service, SCALED_KINDS)
    yield from k8s_apply.apply._inner(objects=objects)
    yield from rollout.wait_for_rollouts._inner(objects=objects, timeout=settings.rollout_timeout_seconds)


def load_users_value(users: str | int) -> int:
    """`users` as the load generator takes it: a whole number from 0 to `MAX_USERS`."""
    text = str(users).strip()
    if not text.isdigit() or int(text) > MAX_USERS:
        raise OperationValueError(f"users takes a whole number from 0 to {MAX_USERS}, not {users!r}")
    return int(text)


@operation()
@_refusing
def load(users: str | int) -> Commands:
    """Run `users` shoppers in the load generator (0: none), now and after every later deploy: its
    ConfigMap and its pod, replaced with the new count."""
    current, updated = _overridden("load", "users", load_users_value(users))
    if updated != current:
        yield FunctionCommand(_save, (updated,), {})
    settings = cloud_of(host).settings
    objects = _of_service(
        render(model_config(settings, updated)), LOAD_GENERATOR, ("ConfigMap", "Deployment")
    )
    yield from k8s_apply.apply._inner(objects=objects)
    yield from rollout.wait_for_rollouts._inner(objects=objects, timeout=settings.rollout_timeout_seconds)


def _of_service(objects: list[Obj], service: str, kinds: tuple[str, ...]) -> list[Obj]:
    return [
        o
        for o in objects
        if o["kind"] in kinds and o["metadata"].get("labels", {}).get(NAME_LABEL) == service
    ]


def known_service(service: str) -> None:
    """Refuse, naming the nearest, a service the shop does not have."""
    if service not in SERVICE_NAMES:
        raise OperationValueError(unknown("service", service, SERVICE_NAMES))


@operation(is_idempotent=False)
@_refusing
def restart(service: str) -> Commands:
    """Replace the pods of `service` (its live colour's), one rollout step at a time (as `kubectl rollout
    restart`)."""
    known_service(service)
    settings = cloud_of(host).settings
    overrides = host.get_fact(Overrides, bucket=settings.state_bucket)
    live = current_objects(host, settings, overrides)[1].live(service)
    yield from rollout.restart._inner(deployment=coloured(service, live) if live else service)


@operation(is_idempotent=False)
@_refusing
def rollback(service: str) -> Commands:
    """Release `service`'s previous run again: its idle colour (still serving, or at zero replicas) is
    brought up, checked and switched to, as a deploy releases; the image rolled back from is not released
    again by later deploys."""
    known_service(service)
    settings = cloud_of(host).settings
    overrides = host.get_fact(Overrides, bucket=settings.state_bucket)
    config = model_config(settings, overrides)
    live = live_workloads(host)
    try:
        plan = plan_rollback(config, live, service)
    except ValueError as err:
        raise OperationValueError(str(err)) from None
    current = plan.current[service]
    rolled_back = current.runs[current.live].image
    pinned = {**overrides, "rolled_back": {**overrides.get("rolled_back", {}), service: rolled_back}}
    if pinned != overrides:
        yield FunctionCommand(_save, (pinned,), {})
    others = plan_releases(config, live, pinned["rolled_back"]).current
    staged, switched, final = (
        _release_objects(render(replace(config, releases={**others, **phase})), service)
        for phase in (plan.staged, plan.switched, plan.final)
    )
    yield from k8s_apply.apply._inner(objects=staged)
    yield from rollout.wait_for_rollouts._inner(objects=staged, timeout=settings.rollout_timeout_seconds)
    yield from release.smoke_checks._inner(moves=plan.moves)
    yield from k8s_apply.apply._inner(objects=switched, after=staged)
    yield from release.drain._inner(moves=plan.moves, seconds=settings.deregistration_delay_seconds)
    yield from k8s_apply.apply._inner(objects=final, after=switched)


def _release_objects(objects: list[Obj], service: str) -> list[Obj]:
    """What a release of `service` changes: its Deployments, Services and HPA, and the Ingress's weights
    when it is the ALB's backend."""
    ingress = [o for o in objects if o["kind"] == "Ingress"] if service == ALB_BACKEND else []
    return _of_service(objects, service, ("Deployment", "Service", "HorizontalPodAutoscaler")) + ingress

"""Ad-hoc operations on a deployed shop, run from the command line like any pyinfra operation:

    pyinfra inventory/local.py infra.ops.set_flag flag=paymentFailure value=on
    pyinfra inventory/local.py infra.ops.set_flag flag=paymentFailure value=off
    pyinfra inventory/local.py infra.ops.scale service=cart replicas=3
    pyinfra inventory/local.py infra.ops.restart service=cart
    pyinfra inventory/local.py fact infra.aws.record.LatestRecord     # the last deploy's record

A flag or a replica count set here is kept in the state bucket (`overrides.json`) and applied by every
later deploy, so a deploy does not undo what an operator chose; `value=off` clears a flag. The change
itself is applied at once: the flags ConfigMap (the services reload it), or the service's Deployment and
HPA as the model renders them with the new count (an HPA's minimum, for the services it scales).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from pyinfra.api.command import FunctionCommand
from pyinfra.api.exceptions import OperationValueError
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State
from pyinfra.context import host

from infra.cloud import cloud_of
from infra.desired import Overrides, model_config, write_overrides
from infra.k8s import apply as k8s_apply
from infra.k8s import rollout
from infra.model import SERVICE_NAMES, render
from services.common.flag_contract import NUMERIC_FLAGS, Flag

NAME_LABEL = "app.kubernetes.io/name"
#: what a replica count is rendered into: the Deployment (at creation, for HPA targets) and its HPA's bounds
SCALED_KINDS = ("Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget")
OFF = ("off", "false", "0", "no")
ON = ("on", "true", "yes")


def flag_value(flag: str, value: str) -> bool | float:
    """`value` as the flag takes it: on/off for a boolean flag, a number (or off) for a numeric one."""
    try:
        known = Flag(flag)
    except ValueError:
        raise OperationValueError(
            f"unknown flag {flag!r} (flags: {', '.join(f.value for f in Flag)})"
        ) from None
    text = str(value).strip().lower()
    if known in NUMERIC_FLAGS:
        if text in OFF:
            return 0
        try:
            return float(text)
        except ValueError:
            raise OperationValueError(f"flag {flag} takes a number or off, not {value!r}") from None
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
def set_flag(flag: str, value: str = "on") -> Generator[FunctionCommand, None, None]:
    """Set a failure flag for every later deploy, and in the running shop now."""
    current, updated = _overridden("flags", flag, flag_value(flag, value))
    if updated != current:
        yield FunctionCommand(_save, (updated,), {})
    objects = render(model_config(cloud_of(host).settings, updated))
    flags = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "flags"]
    yield from k8s_apply.apply._inner(objects=flags)


@operation()
def scale(service: str, replicas: int) -> Generator[FunctionCommand, None, None]:
    """Run `replicas` pods of `service`, now and after every later deploy."""
    if service not in SERVICE_NAMES:
        raise OperationValueError(f"unknown service {service!r} (services: {', '.join(SERVICE_NAMES)})")
    current, updated = _overridden("replicas", service, int(replicas))
    if updated != current:
        yield FunctionCommand(_save, (updated,), {})
    settings = cloud_of(host).settings
    objects = [
        o
        for o in render(model_config(settings, updated))
        if o["kind"] in SCALED_KINDS and o["metadata"].get("labels", {}).get(NAME_LABEL) == service
    ]
    yield from k8s_apply.apply._inner(objects=objects)
    yield from rollout.wait_for_rollouts._inner(objects=objects, timeout=settings.rollout_timeout_seconds)


@operation(is_idempotent=False)
def restart(service: str) -> Generator[FunctionCommand, None, None]:
    """Replace `service`'s pods, one rollout step at a time (as `kubectl rollout restart`)."""
    if service not in SERVICE_NAMES:
        raise OperationValueError(f"unknown service {service!r} (services: {', '.join(SERVICE_NAMES)})")
    yield from rollout.restart._inner(service=service)

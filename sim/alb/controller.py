"""The ALB controller: the AWS Load Balancer Controller's part for `alb` Ingresses, in the cluster's loop.

A pass reads the store (Ingresses, IngressClasses, Services, EndpointSlices, Pods), plans the desired
load balancers (`sim.alb.model`), applies them to the emulator in a thread (`sim.alb.elbv2`: boto3
blocks), then writes back to the store: each Ingress's `status.loadBalancer.ingress[0].hostname` (the
ALB's DNS name), the `ingress.k8s.aws/resources` finalizer (added to every live `alb` Ingress, removed
once its stack is synced without it, so `kubectl delete ingress` returns after the ALB is gone), and
Events: `SuccessfullyReconciled`, and warnings for refused annotations or a failed sync (each once).
A load balancer tagged for this cluster whose stack no Ingress declares is deleted (one whose Ingress
has refused annotations is left alone, as upstream keeps the last good state). Passes run on any
change to the watched types and every `period` seconds (to retry a failed sync), in the controllers'
shared loop (`sim.controllers.base.Controller.run_pass`).

With the data plane's admin address (`dataplane_admin`), a pass also sets the pods' readiness gate
conditions (`sim.alb.readiness`) from the target health the data plane measures (its `/targets`), and
while a gated target is not yet healthy, passes come every `GATE_RECHECK_SECONDS` (upstream requeues
the same way). Without it nothing measures a target's health, and the cluster injects no gates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from sim.alb.elbv2 import ElbV2State
from sim.alb.model import FINALIZER, Plan, is_alb, plan
from sim.alb.readiness import GateCondition, TargetHealth, gate_conditions, health_by_group
from sim.controllers.base import Controller
from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.events import record_event
from sim.k8s.store import Event, Obj, Store, now

log = logging.getLogger(__name__)

INGRESSES = resources.by_key("ingresses.networking.k8s.io")
CLASSES = resources.by_key("ingressclasses.networking.k8s.io")
SERVICES = resources.by_key("services")
SLICES = resources.by_key("endpointslices.discovery.k8s.io")
PODS = resources.by_key("pods")
AWS_ERRORS = (BotoCoreError, ClientError, RuntimeError)
COMPONENT = "ingress"  # the AWS Load Balancer Controller's event source
GATE_RECHECK_SECONDS = 1.0


class AlbController(Controller):
    """Keeps the emulator's ALBs in step with the cluster's `alb` Ingresses."""

    name = "alb-controller"
    watches = frozenset({INGRESSES.key, CLASSES.key, SERVICES.key, SLICES.key, PODS.key})
    period = 10.0

    def __init__(
        self, store: Store, aws_endpoint: str, cluster_name: str, dataplane_admin: str | None = None
    ) -> None:
        super().__init__(store)
        self.aws = ElbV2State(aws_endpoint, cluster_name)
        self.cluster_name = cluster_name
        self.dataplane_admin = dataplane_admin
        self._reported: set[tuple[str, str, str]] = set()  # (ingress uid, reason, message)
        self._recheck: asyncio.TimerHandle | None = None
        self._health_error: str | None = None  # the last failure to read the data plane, logged once

    def wants(self, event: Event) -> bool:
        if event.key == PODS.key:  # readiness and deletion are what move targets
            return bool(_pod_view(event.obj) != _pod_view(event.old))
        return event.key in self.watches

    async def run_pass(self) -> None:
        """One pass, awaited (the emulator is called in a thread): plan from the store, apply to the
        emulator, report back to the store."""
        ingresses = list(self.store.iter_objects(INGRESSES))
        classes = list(self.store.iter_objects(CLASSES))
        desired = plan(
            self.cluster_name,
            ingresses,
            self.store.iter_objects(SERVICES),
            list(self.store.iter_objects(SLICES)),
            self.store.iter_objects(PODS),
            classes,
        )
        for ingress in ingresses:
            meta = ingress["metadata"]
            if is_alb(ingress, classes) and not meta.get("deletionTimestamp"):
                self._add_finalizer(ingress)
        for namespace, name, reason, message in desired.warnings:
            self._warn(namespace, name, reason, message)
        hostnames, failures = await asyncio.to_thread(self._apply, desired)
        self._report(desired, hostnames, failures)
        if self.dataplane_admin is not None:
            health = await self._target_health(self.dataplane_admin)
            if health is not None:
                self._set_gates(gate_conditions(desired, self.store.iter_objects(PODS), health))

    async def _target_health(self, admin: str) -> TargetHealth | None:
        """The data plane's measured target health; None when it cannot be read (next pass retries)."""
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
                response = await client.get(f"{admin}/targets")
                response.raise_for_status()
        except httpx.HTTPError as err:
            if str(err) != self._health_error:
                log.warning("reading target health from the ALB data plane at %s: %s", admin, err)
            self._health_error = str(err)
            return None
        self._health_error = None
        return health_by_group(response.json())

    def _set_gates(self, conditions: list[GateCondition]) -> None:
        """Write the gate conditions that changed (status subresource); recheck soon while any is False."""
        for wanted in conditions:
            with contextlib.suppress(ApiError):  # gone or changed meanwhile: the next pass sees it
                self._set_gate(wanted)
        if self._recheck is not None:
            self._recheck.cancel()
        if any(c.status != "True" for c in conditions):
            self._recheck = asyncio.get_running_loop().call_later(GATE_RECHECK_SECONDS, self.wake)

    def _set_gate(self, wanted: GateCondition) -> None:
        pod = self.store.get(PODS, wanted.namespace, wanted.pod)
        status = pod.setdefault("status", {})
        conditions = status.get("conditions") or []
        current = next((c for c in conditions if c.get("type") == wanted.type), None)
        if not wanted.differs(current):
            return
        condition: dict[str, Any] = {"type": wanted.type, "status": wanted.status, "lastProbeTime": None}
        if current is not None and current.get("status") == wanted.status:
            condition["lastTransitionTime"] = current.get("lastTransitionTime")
        else:
            condition["lastTransitionTime"] = now()
        condition.update({k: v for k, v in (("reason", wanted.reason), ("message", wanted.message)) if v})
        status["conditions"] = [*(c for c in conditions if c.get("type") != wanted.type), condition]
        self.store.update(PODS, wanted.namespace, wanted.pod, pod, subresource="status", manager=COMPONENT)

    def _apply(self, desired: Plan) -> tuple[dict[str, str], dict[str, str]]:
        """In a thread: sync every stack; DNS names and failures by stack."""
        hostnames: dict[str, str] = {}
        failures: dict[str, str] = {}
        for spec in desired.load_balancers:
            try:
                hostnames[spec.stack] = self.aws.sync(spec)
            except AWS_ERRORS as err:  # one stack's failure must not stop the others
                log.warning("syncing ALB stack %s: %s", spec.stack, err)
                failures[spec.stack] = str(err)
        wanted = {spec.stack for spec in desired.load_balancers}
        try:
            gone = set(self.aws.stacks()) - wanted - desired.refused
        except AWS_ERRORS as err:  # the emulator is unreachable: retry next pass
            log.warning("listing ALBs: %s", err)
            gone = set()
            failures.update({stack: str(err) for stack in desired.deleted_stacks()})
        for stack in gone | desired.deleted_stacks():
            if stack in failures:
                continue
            try:
                self.aws.delete(stack)
            except AWS_ERRORS as err:  # retried next pass
                log.warning("deleting ALB stack %s: %s", stack, err)
                failures[stack] = str(err)
        return hostnames, failures

    def _report(self, desired: Plan, hostnames: dict[str, str], failures: dict[str, str]) -> None:
        for spec in desired.load_balancers:
            for namespace, name in spec.members:
                if spec.stack in failures:
                    self._warn(namespace, name, "FailedDeployModel", failures[spec.stack])
                    continue
                self._set_hostname(namespace, name, hostnames[spec.stack])
        for stack, leaving in desired.leaving.items():
            if stack in failures or stack in desired.refused:
                continue
            for namespace, name in leaving:
                self._remove_finalizer(namespace, name)

    def _get(self, namespace: str, name: str) -> Obj | None:
        try:
            return self.store.get(INGRESSES, namespace, name)
        except ApiError:
            return None

    def _add_finalizer(self, stored: Obj) -> None:
        if FINALIZER in (stored["metadata"].get("finalizers") or []):
            return
        ingress = self.store.get(INGRESSES, stored["metadata"]["namespace"], stored["metadata"]["name"])
        meta = ingress["metadata"]
        meta["finalizers"] = [*(meta.get("finalizers") or []), FINALIZER]
        with contextlib.suppress(ApiError):  # changed meanwhile: the next pass sees it
            self.store.update(INGRESSES, meta["namespace"], meta["name"], ingress, manager=COMPONENT)

    def _remove_finalizer(self, namespace: str, name: str) -> None:
        ingress = self._get(namespace, name)
        if ingress is None or FINALIZER not in (ingress["metadata"].get("finalizers") or []):
            return
        ingress["metadata"]["finalizers"] = [f for f in ingress["metadata"]["finalizers"] if f != FINALIZER]
        with contextlib.suppress(ApiError):
            self.store.update(INGRESSES, namespace, name, ingress, manager=COMPONENT)

    def _set_hostname(self, namespace: str, name: str, hostname: str) -> None:
        ingress = self._get(namespace, name)
        if ingress is None:
            return
        wanted = {"ingress": [{"hostname": hostname}]}
        if (ingress.get("status") or {}).get("loadBalancer") == wanted:
            return
        ingress["status"] = {**(ingress.get("status") or {}), "loadBalancer": wanted}
        with contextlib.suppress(ApiError):
            self.store.update(INGRESSES, namespace, name, ingress, subresource="status", manager=COMPONENT)
        message = f"Successfully reconciled: {hostname}"
        self._event(ingress, "Normal", "SuccessfullyReconciled", message)

    def _warn(self, namespace: str, name: str, reason: str, message: str) -> None:
        ingress = self._get(namespace, name)
        if ingress is not None:
            self._event(ingress, "Warning", reason, message)

    def _event(self, ingress: Obj, kind: str, reason: str, message: str) -> None:
        key = (ingress["metadata"].get("uid", ""), reason, message)
        if key in self._reported:
            return
        self._reported.add(key)
        record_event(self.store, ingress, kind, reason, message, COMPONENT)


def _pod_view(pod: Obj | None) -> Any:
    """What of a pod moves targets: its IP, readiness (a gated pod's containers' too) and deletion."""
    if pod is None:
        return None
    status = pod.get("status") or {}
    kinds = ("Ready", "ContainersReady")
    ready = [
        (c.get("type"), c.get("status")) for c in status.get("conditions") or [] if c.get("type") in kinds
    ]
    return (status.get("podIP"), ready, pod["metadata"].get("deletionTimestamp"))

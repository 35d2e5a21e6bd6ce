"""The kubelet proper: binds the kubelet runtime (`Kubelet`) to the API server's store, in the same asyncio
loop as the wire, for one or more nodes.

For each node it registers a Node object (Ready, with heartbeats in `lastHeartbeatTime`) and renews a
Lease in `kube-node-lease`. It subscribes to the store (`Store.listeners`): each pod bound to one of its
nodes gets a pod IP (`sim.kubelet.addresses`) and runs with `Kubelet.run_pod` (ConfigMap and Secret
references resolved from the store); every status change the runtime streams is written through the
status subresource, and, as a kubelet's status manager does every sync period, each heartbeat re-posts
the status of every pod whose stored status differs from the runtime's: the Ready=False the node
lifecycle controller wrote while the node was silent goes once the node heartbeats again, though no
container changed meanwhile. When the pod is marked for deletion (`deletionTimestamp`, the store's
`graceful_pods`) the agent runs the stop sequence (preStop, SIGTERM, SIGKILL after the grace period) and
then deletes the pod with grace 0; a pod removed outright is stopped all the same. `stop()` stops every
pod: no process is left behind. Nodes can come and go while it runs: `add_node` registers one more (with
its own labels, capacity and addresses), `stop_node` ends one as its machine going away would (draining
it first is the node group's job: `sim.eks.drain`). Logs, exec and port-forward of the pods it runs are
served by `sim.kubelet.streams`.

A node's `status.addresses` are what it was given (an EKS node's private address in its subnet), else
`HOST_IP`, the loopback address every node's processes really share; a pod's `hostIP` is its node's
`InternalIP`, as in Kubernetes. Both are for show: whatever must reach a pod (port-forward, probes, the
service proxy, Prometheus' targets) uses its pod IP, and the downward API's `status.hostIP` stays
`HOST_IP`, the address a process on the node can reach.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sim.k8s import resources
from sim.k8s.errors import ApiError
from sim.k8s.store import Event, Obj, Store, now
from sim.kubelet.addresses import PodAddresses
from sim.kubelet.container import KubeletConfig
from sim.kubelet.node import Kubelet
from sim.kubelet.pod import HOST_IP, PodRuntime

log = logging.getLogger(__name__)

PODS = resources.by_key("pods")
NODES = resources.by_key("nodes")
LEASES = resources.by_key("leases.coordination.k8s.io")
CONFIGMAPS = resources.by_key("configmaps")
SECRETS = resources.by_key("secrets")
LEASE_NAMESPACE = "kube-node-lease"
MANAGER = "kubelet"
KUBELET_VERSION = "v1.30.0"
HEARTBEAT_SECONDS = 10.0
LEASE_SECONDS = 40
SHUTDOWN_GRACE = 3.0
TERMINAL = ("Succeeded", "Failed")
DEFAULT_CAPACITY = {"cpu": "2", "memory": "4Gi", "pods": "17", "ephemeral-storage": "10Gi"}


class StoreConfigSource:
    """ConfigMap and Secret data read from the store (a Secret's values base64-decoded)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def data(self, kind: str, namespace: str, name: str) -> Mapping[str, str] | None:
        rt = SECRETS if kind == "Secret" else CONFIGMAPS
        try:
            obj = self.store.get(rt, namespace, name)
        except ApiError:
            return None
        out: dict[str, str] = {}
        if kind == "Secret":
            for key, value in (obj.get("data") or {}).items():
                try:
                    out[key] = base64.b64decode(value).decode()
                except (binascii.Error, UnicodeDecodeError):
                    out[key] = ""
            out.update(obj.get("stringData") or {})
        else:
            out.update(obj.get("data") or {})
        return out


@dataclass
class Running:
    """A pod this agent runs: its runtime, address and the task writing its status."""

    runtime: PodRuntime
    ip: str
    namespace: str
    name: str
    node: str
    sync: asyncio.Task[None] | None = None
    stopping: asyncio.Task[None] | None = None


def _micro_time(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeAgent:
    """The kubelets of `nodes`, driven by `store`. Call `start()` and `stop()` in the store's loop."""

    def __init__(
        self,
        store: Store,
        nodes: Sequence[str],
        config: KubeletConfig,
        pod_cidr: str = "127.1.0.0/16",
        capacity: Mapping[str, str] | None = None,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.store = store
        self.nodes = list(dict.fromkeys(nodes))
        config = replace(config, config_source=config.config_source or StoreConfigSource(store))
        self.config = config
        self.kubelets = {
            name: Kubelet(replace(config, log_root=config.log_root / name)) for name in self.nodes
        }
        self.capacity = {**DEFAULT_CAPACITY, **(capacity or {})}
        #: the labels, capacity and addresses of nodes added with `add_node`, over the standard ones
        self.node_labels: dict[str, dict[str, str]] = {}
        self.node_capacity: dict[str, dict[str, str]] = {}
        self.node_addresses: dict[str, list[dict[str, str]]] = {}
        self.addresses = PodAddresses(pod_cidr)
        self.heartbeat_seconds = heartbeat_seconds
        self.running: dict[str, Running] = {}  # pod uid -> what runs it
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._refreshing: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._starting: set[str] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        for name in self.nodes:
            self._register(name)
            self._renew_lease(name)
        self.store.listeners.append(self._on_event)
        self._tasks = [
            asyncio.create_task(self._heartbeats(), name="node-heartbeats"),
            asyncio.create_task(self._events(), name="node-agent"),
        ]
        for pod in list(self.store.iter_objects(PODS)):
            await self._sync_pod(pod)

    async def stop(self) -> None:
        """Stop every pod this agent runs (at most SHUTDOWN_GRACE each) and end its tasks."""
        with contextlib.suppress(ValueError):
            self.store.listeners.remove(self._on_event)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await asyncio.gather(*(kubelet.stop_all(SHUTDOWN_GRACE) for kubelet in self.kubelets.values()))
        syncs = [r.sync for r in self.running.values() if r.sync is not None]
        stops = [r.stopping for r in self.running.values() if r.stopping is not None]
        for task in syncs:
            task.cancel()
        await asyncio.gather(*syncs, *stops, return_exceptions=True)
        self.running.clear()

    # ------------------------------------------------------------------ nodes

    def _node_status(self, name: str) -> Obj:
        stamp = now()

        def condition(kind: str, status: str, reason: str, message: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }

        capacity = self.node_capacity.get(name, self.capacity)
        return {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "conditions": [
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
                ),
                condition(
                    "PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"
                ),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": self._addresses(name),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": name,
                "systemUUID": name,
                "bootID": name,
                "kernelVersion": "",
                "osImage": "shopstack local cloud",
                "containerRuntimeVersion": "process://1",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def _addresses(self, name: str) -> list[dict[str, str]]:
        given = self.node_addresses.get(name)
        if given:
            return [dict(address) for address in given]
        return [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": name}]

    def _host_ips(self, name: str) -> dict[str, Any]:
        """The `hostIP` and `hostIPs` of the node's pods: its `InternalIP`."""
        internal = (a["address"] for a in self._addresses(name) if a["type"] == "InternalIP")
        ip = next(internal, HOST_IP)
        return {"hostIP": ip, "hostIPs": [{"ip": ip}]}

    def _register(self, name: str) -> None:
        labels = {  # as a kubelet labels its Node, the deprecated beta twins included
            **self.node_labels.get(name, {}),
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
        }
        status = self._node_status(name)
        try:
            node = self.store.get(NODES, None, name)
        except ApiError:
            node = self.store.create(
                NODES,
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}},
                manager=MANAGER,
            )
        else:
            node["metadata"]["labels"] = {**(node["metadata"].get("labels") or {}), **labels}
            node = self.store.update(NODES, None, name, node, manager=MANAGER)
        node["status"] = status
        self.store.update(NODES, None, name, node, subresource="status", manager=MANAGER)

    def _heartbeat(self, name: str) -> None:
        try:
            node = self.store.get(NODES, None, name)
        except ApiError:
            self._register(name)
            return
        stamp = now()
        fresh = self._node_status(name)
        old = {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}
        for condition in fresh["conditions"]:
            previous = old.get(condition["type"])
            if previous is not None and previous.get("status") == condition["status"]:
                condition["lastTransitionTime"] = previous.get("lastTransitionTime", stamp)
        node["status"] = {**(node.get("status") or {}), **fresh}
        self.store.update(NODES, None, name, node, subresource="status", manager=MANAGER)

    def _renew_lease(self, name: str) -> None:
        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": _micro_time(),
        }
        try:
            lease = self.store.get(LEASES, LEASE_NAMESPACE, name)
        except ApiError:
            self.store.create(
                LEASES,
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                    "spec": spec,
                },
                LEASE_NAMESPACE,
                manager=MANAGER,
            )
            return
        lease["spec"] = {**(lease.get("spec") or {}), **spec}
        self.store.update(LEASES, LEASE_NAMESPACE, name, lease, manager=MANAGER)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            for name in list(self.nodes):
                try:
                    self._heartbeat(name)
                    self._renew_lease(name)
                except ApiError as err:
                    log.warning("heartbeat of node %s: %s", name, err)
            self._reconcile_statuses()

    def _reconcile_statuses(self) -> None:
        """Re-post the status of every running pod whose stored status differs from its runtime's (the
        status manager's `needsReconcile`, on its sync period): someone else may have written it."""
        for running in list(self.running.values()):
            if running.stopping is None:
                self._post(running, running.runtime.status())

    def add_node(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        capacity: Mapping[str, str] | None = None,
        addresses: Sequence[Mapping[str, str]] = (),
    ) -> None:
        """Run one more node, registered with `labels` and `capacity` (over the agent's) and `addresses`
        (its `status.addresses`; `HOST_IP` when none) at once when the agent runs, else at `start()`. A
        node already run here is left as it is."""
        if name in self.kubelets:
            return
        self.node_labels[name] = dict(labels or {})
        self.node_capacity[name] = {**self.capacity, **(capacity or {})}
        self.node_addresses[name] = [dict(address) for address in addresses]
        self.kubelets[name] = Kubelet(replace(self.config, log_root=self.config.log_root / name))
        self.nodes.append(name)
        if self._tasks:
            self._register(name)
            self._renew_lease(name)

    async def stop_node(self, name: str) -> None:
        """End node `name` as its machine going away would: its heartbeats stop and every pod process it
        runs is killed at once, its pods' addresses freed (a pod that was already stopping is deleted, as
        at the end of any stop). Its Node, Lease and other pods stay in the store, for whoever removes the
        node (`sim.eks.drain`) to delete."""
        if name not in self.kubelets:
            return
        self.nodes.remove(name)
        mine = {uid: r for uid, r in self.running.items() if r.node == name}
        stops = [r.stopping for r in mine.values() if r.stopping is not None]
        for task in stops:
            task.cancel()
        await asyncio.gather(*stops, return_exceptions=True)
        await self.kubelets[name].stop_all(0.0)
        for uid, running in mine.items():
            if running.sync is not None:
                running.sync.cancel()
            self.addresses.release(running.ip)
            self.running.pop(uid, None)
        del self.kubelets[name]
        self.node_labels.pop(name, None)
        self.node_capacity.pop(name, None)
        self.node_addresses.pop(name, None)

    # ------------------------------------------------------------------ pods

    def _on_event(self, event: Event) -> None:
        if event.key == PODS.key:
            self._queue.put_nowait(event)
        elif event.key in (CONFIGMAPS.key, SECRETS.key) and event.type == "MODIFIED":
            self._refresh_volumes_of(event)

    def _refresh_volumes_of(self, event: Event) -> None:
        """Rewrite, in every running pod that mounts it, the volume of a ConfigMap or Secret that changed
        (as a kubelet's periodic sync does, at once): the files change in place, the pods run on."""
        meta = event.obj["metadata"]
        kind = "Secret" if event.key == SECRETS.key else "ConfigMap"
        for running in self.running.values():
            spec = running.runtime.spec
            if running.namespace == meta.get("namespace") and any(
                v.kind == kind and v.source == meta["name"] for v in spec.volumes
            ):
                task = asyncio.get_running_loop().create_task(running.runtime.refresh_volumes())
                self._refreshing.add(task)
                task.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task[None]) -> None:
        self._refreshing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("refreshing a pod's volumes failed: %s", task.exception())

    async def _events(self) -> None:
        while True:
            event = await self._queue.get()
            if event is None:
                return
            try:
                if event.type == "DELETED":
                    self._forget(event.obj)
                else:
                    await self._sync_pod(event.obj)
            except Exception:  # one pod's trouble must not stop the node
                log.exception("syncing pod %s", event.obj.get("metadata", {}).get("name"))

    def _mine(self, pod: Mapping[str, Any]) -> bool:
        return (pod.get("spec") or {}).get("nodeName") in self.kubelets

    async def _sync_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        running = self.running.get(uid)
        if meta.get("deletionTimestamp"):
            if running is not None:
                if running.stopping is None:
                    grace = meta.get("deletionGracePeriodSeconds")
                    running.stopping = asyncio.create_task(
                        self._terminate(uid, running, None if grace is None else float(grace))
                    )
            elif self._mine(pod):
                self._delete_now(meta["namespace"], meta["name"], uid)
            return
        if running is not None:
            running.runtime.observe(pod)  # its readiness gates' conditions, which others set
            return
        if uid in self._starting or not self._mine(pod):
            return
        if (pod.get("status") or {}).get("phase") in TERMINAL:
            return
        self._starting.add(uid)
        try:
            await self._run(pod)
        finally:
            self._starting.discard(uid)

    async def _run(self, pod: Obj) -> None:
        meta, node = pod["metadata"], pod["spec"]["nodeName"]
        ip = self.addresses.allocate()
        kubelet = self.kubelets[node]
        try:
            runtime = await kubelet.run_pod(pod, ip)
        except Exception as err:  # a pod the runtime cannot take fails, the node goes on
            self.addresses.release(ip)
            log.exception("starting pod %s/%s", meta["namespace"], meta["name"])
            self._write_status(
                meta["namespace"],
                meta["name"],
                {"phase": "Failed", "reason": "StartError", "message": str(err), **self._host_ips(node)},
            )
            return
        running = Running(runtime, ip, meta["namespace"], meta["name"], node)
        self.running[meta["uid"]] = running
        running.sync = asyncio.create_task(self._publish(running), name=f"status {meta['name']}")

    async def _publish(self, running: Running) -> None:
        """Write each status the runtime streams, until its containers have all stopped."""
        async for status in running.runtime.changes():
            if running.stopping is not None:
                continue  # the pod is going: its final status does not matter
            self._post(running, status)

    def _post(self, running: Running, status: Obj) -> None:
        self._write_status(running.namespace, running.name, {**status, **self._host_ips(running.node)})

    def _write_status(self, namespace: str, name: str, status: Obj) -> None:
        """Merge `status` into the pod's stored status and write it, unless that changes nothing."""
        try:
            pod = self.store.get(PODS, namespace, name)
        except ApiError:
            return
        old = pod.get("status") or {}
        merged = {**old, **status}
        # keep the scheduler's PodScheduled condition and transition times of unchanged conditions
        before = {c.get("type"): c for c in old.get("conditions") or []}
        conditions = []
        for condition in status.get("conditions") or []:
            previous = before.get(condition.get("type"))
            if previous is not None and previous.get("status") == condition.get("status"):
                condition = {**condition, "lastTransitionTime": previous.get("lastTransitionTime")}
            conditions.append(condition)
        if "conditions" in status:  # the kubelet's own; others' (readiness gates') stay as they are
            owned = {c.get("type") for c in conditions}
            merged["conditions"] = conditions + [c for c in before.values() if c.get("type") not in owned]
        if merged == old:
            return
        pod["status"] = merged
        try:
            self.store.update(PODS, namespace, name, pod, subresource="status", manager=MANAGER)
        except ApiError as err:
            log.debug("status of %s/%s: %s", namespace, name, err)

    async def _terminate(self, uid: str, running: Running, grace: float | None) -> None:
        """The stop sequence, then the final delete (grace 0) that removes the pod from the store."""
        kubelet = self.kubelets[running.node]
        try:
            await kubelet.stop_pod(uid, grace)
        finally:
            if running.sync is not None:
                running.sync.cancel()
                await asyncio.gather(running.sync, return_exceptions=True)
            self.addresses.release(running.ip)
            self.running.pop(uid, None)
            self._delete_now(running.namespace, running.name, uid)

    def _delete_now(self, namespace: str, name: str, uid: str) -> None:
        try:
            self.store.delete(PODS, namespace, name, grace_period=0, preconditions={"uid": uid})
        except ApiError as err:
            if err.code != 404:
                log.warning("deleting pod %s/%s: %s", namespace, name, err)

    def _forget(self, pod: Obj) -> None:
        """A pod removed from the store outright (forced delete): stop it if it still runs."""
        uid = pod["metadata"]["uid"]
        running = self.running.get(uid)
        if running is not None and running.stopping is None:
            running.stopping = asyncio.create_task(self._terminate(uid, running, 0.0))

    # ------------------------------------------------------------------ usage

    def metrics(self) -> list[dict[str, Any]]:
        """Every pod's usage on every node, as metrics.k8s.io's PodMetrics items (the HPA's samples)."""
        return [item for kubelet in self.kubelets.values() for item in kubelet.metrics()]

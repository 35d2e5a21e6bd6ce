"""What the kubelet serves the API server about a running pod: `pods/log`, `pods/exec` and
`pods/portforward` (the kubelet's own server upstream, port 10250).

`NodeStreams` answers for the pods a `NodeAgent` runs, in the API server's terms: `read_log` is its
`log_source` (`sim.k8s.app.LogSource`) and the object itself its `streams` (`sim.k8s.streaming.PodStreams`),
wired by `sim.cluster`, so the API server imports nothing of the kubelet. A pod that is not scheduled, not
on a node served here or not running is the 400 kubectl shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sim.k8s import errors
from sim.k8s.store import Obj
from sim.kubelet.agent import NodeAgent, Running
from sim.kubelet.exec import ExecError, ExecProcess, start_exec

#: how long port-forward waits for the pod to accept a connection
CONNECT_SECONDS = 5.0


class NodeStreams:
    """Logs, exec and port-forward of the pods `agent` runs."""

    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent

    async def read_log(self, pod: Obj, query: dict[str, str]) -> bytes:
        """`pods/log`: a 400 with kubectl's message when there is no log to show."""
        node = (pod.get("spec") or {}).get("nodeName")
        kubelet = self.agent.kubelets.get(node or "")
        name = pod["metadata"]["name"]
        if kubelet is None:
            raise errors.bad_request(
                f"pod {name} is not scheduled to a node yet"
                if not node
                else f"node {node} of pod {name} is not served here"
            )
        try:
            return await kubelet.read_log(pod, query)
        except LookupError as err:
            raise errors.bad_request(str(err.args[0]) if err.args else str(err)) from None

    def _running(self, pod: Obj) -> Running:
        """The pod as the agent runs it, or the 400 the API server answers for a pod not running."""
        node = (pod.get("spec") or {}).get("nodeName")
        name = pod["metadata"]["name"]
        if not node:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        running = self.agent.running.get(pod["metadata"]["uid"])
        if node not in self.agent.kubelets or running is None:
            raise errors.bad_request(f"pod {name} is not running on node {node}")
        return running

    def exec_container(self, pod: Obj, container: str | None) -> str:
        """The container `kubectl exec` means (the only one when not named), checked to be running."""
        running = self._running(pod)
        names = list(running.runtime.containers)
        name = container or (names[0] if len(names) == 1 else "")
        if not name:
            choices = " ".join(names)
            raise errors.bad_request(
                f"a container name must be specified for pod {running.name}, choose one of: [{choices}]"
            )
        target = running.runtime.containers.get(name)
        if target is None:
            raise errors.bad_request(f"container {name} is not valid for pod {running.name}")
        if not target.running():
            raise errors.bad_request(f'container not found ("{name}")')
        return name

    async def exec(
        self, pod: Obj, container: str, command: Sequence[str], stdin: bool, tty: bool
    ) -> ExecProcess:
        """Start `command` in the container's context (`sim.kubelet.exec`)."""
        self.exec_container(pod, container)
        target = self._running(pod).runtime.containers[container]
        try:
            return await start_exec(target, command, stdin=stdin, tty=tty)
        except ExecError as err:
            raise errors.bad_request(str(err)) from None

    async def open_port(self, pod: Obj, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to `port` on the pod's address (what port-forward copies to)."""
        running = self._running(pod)
        async with asyncio.timeout(CONNECT_SECONDS):
            return await asyncio.open_connection(running.ip, port)

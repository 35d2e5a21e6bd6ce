"""The local cloud's kubelet: the container runtime of one node, running pods as local processes.

Model apart from I/O: spec.py reads a Pod dict (env resolution, probes, limits, volumes), status.py
writes Kubernetes-shaped statuses, backoff.py is arithmetic (quantities are `kube.quantity`). The I/O:
procstat.py samples a container's session in /proc, logs.py keeps per-instance log files, probes.py runs
probes and hooks, volumes.py writes ConfigMap/Secret/emptyDir volumes, container.py supervises one
container from its image (`containers.nodestore`), pod.py runs a pod and streams its status, node.py holds
a node's pods, exec.py runs a command in a running container. No API server is needed: the caller passes
the pod and the loopback IP it picked, and reads `status()` or iterates `changes()`.

Bound to an API server's store (`sim.cluster` wires them): agent.py is the kubelet proper (registers its
nodes, renews their leases, runs the pods bound to them and writes their status), addresses.py gives
each pod its loopback IP, streams.py serves the API server a pod's logs, exec and port-forward.

Not like a real node: no namespaces or cgroups. A container sees the host's filesystem; its image's
paths and its volumes' mountPaths are translated (in env values, args and working dir) to the unpacked
rootfs and the pod's volume directories. The image's `User` is not applied. Memory is enforced by
sampling RSS, so a burst between two samples can exceed the limit. SIGTERM and SIGKILL go to the
container's whole session.
"""

from sim.kubelet.container import KubeletConfig
from sim.kubelet.node import Kubelet
from sim.kubelet.pod import PodRuntime
from sim.kubelet.spec import ConfigError, ConfigSource

__all__ = ["ConfigError", "ConfigSource", "Kubelet", "KubeletConfig", "PodRuntime"]

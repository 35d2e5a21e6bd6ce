"""Image stand-ins: local programs that run in place of the third-party images the deploy uses.

`table` is the one table (image repository -> stand-in) the kubelet consults for an image its node's
store does not hold; the other modules are the stand-ins that need a program of their own: `kafka` (the
Tansu broker), `prometheus` (Debian's binary, with Kubernetes discovery through the local API),
`grafana` (the provisioned datasources and dashboards, and `grafana_query`: the panels' queries against
the real Prometheus) and `jaeger` (Jaeger v2: the collector engine with its trace store and query API),
`alertmanager` and `blackbox` (Debian's binaries, with the pod's address and the cluster's names:
`binaries`) and `kube_state_metrics` (the cluster's objects as its metrics). The collector's stand-in is
`sim.telemetry.collector`; the Python base image's is the host's Python (`table`).
"""

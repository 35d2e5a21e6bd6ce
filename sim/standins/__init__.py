"""Image stand-ins: local programs that run in place of the third-party images the deploy uses.

`table` is the one table (image repository -> stand-in) the kubelet consults for an image its node's
store does not hold; the other modules are the stand-ins that need a program of their own: `kafka` (the
Tansu broker), `prometheus` (Debian's binary, with Kubernetes discovery through the local API) and
`grafana` (the provisioned datasources and dashboards). The collector's stand-in is `sim.telemetry`.
"""

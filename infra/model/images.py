"""The third-party images the deploy runs, pinned by digest (tag kept for people; the digest is what
pulls). Locally `sim/standins/table.py` runs a stand-in for each repository instead of the image."""

from __future__ import annotations

from typing import Final

KAFKA: Final = (
    "docker.io/apache/kafka:3.8.0@sha256:c9aea96a4813e77e703541b1d8f7d58c9ee05b77353da33684db55c840548791"
)
COLLECTOR: Final = (
    "docker.io/otel/opentelemetry-collector-contrib:0.102.0"
    "@sha256:26bce721ca2f83db1c2c4e8873514dfe5b3973401fe88a1208efdc74e32840c1"
)
PROMETHEUS: Final = (
    "docker.io/prom/prometheus:v2.54.1"
    "@sha256:f6639335d34a77d9d9db382b92eeb7fc00934be8eae81dbc03b31cfe90411a94"
)
GRAFANA: Final = (
    "docker.io/grafana/grafana:11.2.0@sha256:408afb9726de5122b00a2576763a8a57a3c86d5b0eff5305bc994ceb3eb96c3f"
)
#: Jaeger v2 (the OpenTelemetry Demo's trace store). The digest is the one a running cluster reported as
#: the imageID of `docker.io/jaegertracing/jaeger:2.15.1` (a public `kubectl get pods` listing): seen, not
#: pulled here, since no registry but PyPI, Debian and npm is reachable from these machines.
JAEGER: Final = (
    "docker.io/jaegertracing/jaeger:2.15.1"
    "@sha256:a7dd965687d45507072676db81e6903706ba334dfc92f0c248125cfd9a70c483"
)
LOAD_BALANCER_CONTROLLER: Final = (
    "public.ecr.aws/eks/aws-load-balancer-controller:v2.14.1"
    "@sha256:13abee6e31c2f25ee91f9ae91aabe4f5bcaf6a70eccd372b36835786d2e0813e"
)
ALERTMANAGER: Final = (
    "docker.io/prom/alertmanager:v0.27.0"
    "@sha256:e13b6ed5cb929eeaee733479dce55e10eb3bc2e9c4586c705a4e8da41e5eacf5"
)
BLACKBOX_EXPORTER: Final = (
    "docker.io/prom/blackbox-exporter:v0.25.0"
    "@sha256:b04a9fef4fa086a02fc7fcd8dcdbc4b7b35cc30cdee860fdc6a19dd8b208d63e"
)
KUBE_STATE_METRICS: Final = (
    "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0"
    "@sha256:639a1e2da549210adddc0391ff91e270e83f7873014aec53258462812f741e6f"
)
#: the cluster autoscaler's 1.30 release (its minor follows the cluster's). The digest is the one a public
#: project's Renovate-maintained pin gives for v1.30.3 (seen, not pulled: no registry but PyPI, Debian and
#: npm is reachable from these machines)
CLUSTER_AUTOSCALER: Final = (
    "registry.k8s.io/autoscaling/cluster-autoscaler:v1.30.3"
    "@sha256:08fd86ee093760849ac4fd579eb90185b669fc20aa56c156aa34ea7b73dd5e34"
)
#: the monitoring's own small programs (standard library only, from a ConfigMap): the project's Python base
PYTHON: Final = (
    "docker.io/library/python:3.11-slim"
    "@sha256:90744cff8f32887f075c47d747a173ff333e9e98801667af93c357fa9f5e28ff"
)

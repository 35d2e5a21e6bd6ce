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
LOAD_BALANCER_CONTROLLER: Final = (
    "public.ecr.aws/eks/aws-load-balancer-controller:v2.14.1"
    "@sha256:13abee6e31c2f25ee91f9ae91aabe4f5bcaf6a70eccd372b36835786d2e0813e"
)

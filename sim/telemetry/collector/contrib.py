"""The distribution the deploy's collector image is (`otel/opentelemetry-collector-contrib:0.102.0`), as
far as the stand-in implements it: the components the deploy's configuration uses, and nothing else."""

from __future__ import annotations

from collections.abc import Mapping

from sim.telemetry.collector import (
    batchprocessor,
    debugexporter,
    memorylimiter,
    otlpexporter,
    otlpreceiver,
    prometheusexporter,
    spanmetrics,
)
from sim.telemetry.collector.components import Distribution, Factory

NAME = "otelcol-contrib 0.102.0"
#: the otlp receiver's default endpoints in 0.102 (later versions listen on localhost by default)
OTLP_DEFAULTS = {"grpc": "0.0.0.0:4317", "http": "0.0.0.0:4318"}


def collector_factories(otlp_defaults: Mapping[str, str]) -> list[Factory]:
    """The collector components the stand-in implements, with the otlp receiver's default endpoints of
    the distribution they are part of (Jaeger v2 is built from the same ones)."""
    return [
        otlpreceiver.factory(dict(otlp_defaults)),
        memorylimiter.FACTORY,
        batchprocessor.FACTORY,
        spanmetrics.FACTORY,
        prometheusexporter.FACTORY,
        otlpexporter.GRPC_FACTORY,
        otlpexporter.HTTP_FACTORY,
        debugexporter.FACTORY,
    ]


CONTRIB = Distribution(NAME, collector_factories(OTLP_DEFAULTS))

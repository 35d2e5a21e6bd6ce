"""The distribution the deploy's Jaeger image is (`jaegertracing/jaeger:2.15.1`), as far as the stand-in
implements it: Jaeger's storage, query and health extensions and storage exporter, and the collector
components it shares with collector-contrib."""

from __future__ import annotations

from sim.standins.jaeger.components import FACTORIES
from sim.telemetry.collector.components import Distribution
from sim.telemetry.collector.contrib import collector_factories

NAME = "jaeger 2.15.1"
#: Jaeger 2.x's otlp receiver listens on localhost unless told otherwise
OTLP_DEFAULTS = {"grpc": "localhost:4317", "http": "localhost:4318"}

JAEGER = Distribution(NAME, [*collector_factories(OTLP_DEFAULTS), *FACTORIES])

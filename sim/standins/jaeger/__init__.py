"""The Jaeger v2 image's stand-in: Jaeger is an OpenTelemetry Collector distribution, so its stand-in is
the collector engine (`sim.telemetry.collector`) with Jaeger's components (`components`): it runs the
deploy's Jaeger configuration, takes OTLP (gRPC and HTTP) into an in-memory trace store (`store`) and
serves the part of Jaeger's query API the suite and Grafana use (`query`, in Jaeger's JSON, `uimodel`).
"""

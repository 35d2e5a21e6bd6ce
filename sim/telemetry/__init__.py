"""OTLP in the local cloud.

- The telemetry receiver: an OTLP/HTTP receiver that keeps what it is sent in bounded memory and answers
  queries about it (traces, spans, the service graph, metrics, logs): what the services' component tests
  and the local cloud's own `telemetry` component run. `store` is the model, `otlp` the wire format,
  `views` the query API's JSON, `app` the HTTP server, `client` the tests' query client.
- `collector`: the OpenTelemetry Collector image's stand-in, which runs the deployed collector
  configuration (its pipelines, with components of its own), and the engine Jaeger's stand-in runs on.
"""

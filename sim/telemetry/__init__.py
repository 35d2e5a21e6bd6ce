"""The OpenTelemetry Collector stand-in: an OTLP/HTTP receiver that keeps what it is sent in bounded
memory and answers queries about it (traces, spans, the service graph, metrics, logs).

`store` is the model, `otlp` the wire format, `app` the HTTP server, `client` the tests' query client.
"""

"""frontend-proxy: the shop's edge router (the Envoy of the OpenTelemetry Demo). It streams each request
to the upstream its route table names, with request ids and forwarding headers."""

"""Concerns shared by every Shopstack service: configuration, telemetry, flags, Kafka, HTTP and health."""

"""load-generator: Locust with the OpenTelemetry Demo's shoppers, marked synthetic; its web UI on 8089.

`users` holds the user classes (importable without starting Locust), `locustfile` is what Locust loads,
`flood` reads the `loadGeneratorFloodHomepage` flag from the flags file, and `python -m
services.load_generator` runs Locust itself, configured by Locust's own `LOCUST_*` variables.
"""

"""The OpenTelemetry Collector's stand-in: runs the deploy's collector configuration itself.

The collector image cannot run here, so the kubelet runs `python -m sim.telemetry.collector` in its
place with the pod's args: it reads the same configuration file (the ConfigMap the model renders,
mounted where the image reads it) and runs its pipelines with components of its own that behave as the
pinned collector-contrib's do where the suite or a user can see it, refusing in one line any component
or option it does not implement.

- `config`: the file's structure (sections, ids, pipelines, `${env:...}`); `settings`: options and
  values; `components`: factories, consumers, the host; `service`: the wiring; `run`: the process.
- components: `otlpreceiver`, `memorylimiter`, `batchprocessor`, `spanmetrics` (connector),
  `prometheusexporter` (with `promnames`), `otlpexporter` (otlp, otlphttp; with `sending`),
  `debugexporter` (with `otlptext`); `contrib` is the distribution made of them.
- `pdata`: the data between them (OTLP export requests); `servers`: listening sockets.

Jaeger v2 is a collector distribution too: `sim.standins.jaeger` runs its configuration on this engine.
"""

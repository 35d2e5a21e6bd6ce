"""The monitoring's own small programs, each one file of standard-library Python that the model mounts from a
ConfigMap into a pod of the project's Python base image (`images.PYTHON`): `alert_receiver` (Alertmanager's
webhook receiver, which the suite reads) and `synthetic_monitor` (the checkout journey probe, and the
blackbox exporter's targets). They import nothing outside the standard library, not even each other.
"""

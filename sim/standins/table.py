"""Image stand-ins: the one table of third-party images the deploy uses and the local programs that run
in their place.

A node's image store holds only the images the project builds. A pod whose image the store does not hold
but whose repository this table names runs the stand-in instead: the Kafka images run the Tansu broker
(storage in the AWS emulator's S3 when the node knows the emulator, so a broker restart keeps topics,
messages and committed offsets), the OpenTelemetry Collector images run the local OTLP/HTTP receiver, the
Prometheus images run the `prometheus` binary with the container's own args (paths as the pod's volumes
mount them), the Grafana images a stand-in serving the provisioned datasources and dashboards
(`sim.standins.grafana`). An image that is neither in the store nor in this table stays an `ErrImagePull`.

A stand-in is a `RunSpec` like any image's, so the kubelet starts, probes and stops it the same way; its
root filesystem is an empty directory of its own under the image store (where paths the pod does not
mount, such as Prometheus's `/prometheus`, land).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from containers.nodestore.errors import ImageError
from containers.nodestore.reference import parse
from containers.nodestore.runspec import RunSpec
from sim.aws import CREDENTIALS, REGION

KAFKA_PORT = 9092
OTLP_HTTP_PORT = 4318
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
#: the S3 bucket a Kafka stand-in stores its log in (one broker per local cloud)
KAFKA_BUCKET = "tansu"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
HOST_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Placement:
    """Where a stand-in runs: the pod's address, the AWS emulator and the cluster API the node knows."""

    pod_ip: str
    aws_endpoint: str | None = None
    #: the cluster's API, which the Prometheus stand-in's Kubernetes discovery reads
    api_server: str | None = None


@dataclass(frozen=True)
class StandIn:
    """What runs for the images of `repositories`: `program(placement)` is its argv and env; a container's
    args are appended (translated to the pod's mounts) only when `takes_args`."""

    name: str
    repositories: tuple[str, ...]
    program: Callable[[Placement], tuple[list[str], dict[str, str]]]
    takes_args: bool = False
    default_args: tuple[str, ...] = ()
    #: directories of the real image that the stand-in's root holds (so that its paths land there)
    directories: tuple[str, ...] = ()


def _python_env() -> dict[str, str]:
    return {"PATH": HOST_PATH, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1"}


def _kafka(placement: Placement) -> tuple[list[str], dict[str, str]]:
    argv = [sys.executable, "-m", "sim.standins.kafka", "--listen", f"{placement.pod_ip}:{KAFKA_PORT}"]
    env = _python_env()
    if placement.aws_endpoint is not None:
        argv += ["--bucket", KAFKA_BUCKET]
        env |= {"AWS_ENDPOINT": placement.aws_endpoint, "AWS_ALLOW_HTTP": "true", **CREDENTIALS}
        env |= {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
    return argv, env


def _collector(placement: Placement) -> tuple[list[str], dict[str, str]]:
    argv = [sys.executable, "-m", "sim.telemetry", "--host", placement.pod_ip]
    return [*argv, "--port", str(OTLP_HTTP_PORT)], _python_env()


def _prometheus(placement: Placement) -> tuple[list[str], dict[str, str]]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise ImageError(
            "the Prometheus stand-in needs the `prometheus` binary, which is not installed here "
            "(Debian: apt-get install prometheus)"
        )
    argv = [binary, f"--web.listen-address={placement.pod_ip}:{PROMETHEUS_PORT}"]
    if placement.api_server is None:
        return argv, {"PATH": HOST_PATH}
    # no in-cluster credentials here: a wrapper points the config's Kubernetes discovery at the API
    wrapper = [sys.executable, "-m", "sim.standins.prometheus", "--api-server", placement.api_server, "--"]
    return [*wrapper, *argv], _python_env()


def _grafana(placement: Placement) -> tuple[list[str], dict[str, str]]:
    argv = [sys.executable, "-m", "sim.standins.grafana", "--listen", f"{placement.pod_ip}:{GRAFANA_PORT}"]
    return argv, _python_env()


STANDINS: tuple[StandIn, ...] = (
    StandIn("kafka", ("apache/kafka", "bitnami/kafka", "confluentinc/cp-kafka"), _kafka),
    StandIn(
        "otel-collector",
        ("otel/opentelemetry-collector", "otel/opentelemetry-collector-contrib"),
        _collector,
    ),
    StandIn(
        "prometheus",
        ("prom/prometheus", "prometheus/prometheus"),
        _prometheus,
        takes_args=True,
        default_args=("--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"),
        directories=("prometheus",),
    ),
    StandIn(
        "grafana",
        ("grafana/grafana", "grafana/grafana-oss"),
        _grafana,
        takes_args=True,
        default_args=("--provisioning=/etc/grafana/provisioning",),
    ),
)


def find(reference: str) -> StandIn | None:
    """The stand-in for an image reference (any registry, tag or digest), or None."""
    name = parse(reference).name.removeprefix("library/")
    return next((s for s in STANDINS if name in s.repositories), None)


@dataclass(frozen=True)
class StandInRunSpec(RunSpec):
    """A stand-in as a RunSpec: the pod's `command` is the real image's and is ignored; its args are
    kept only for stand-ins that take them."""

    takes_args: bool = False

    def command(self, command: Sequence[str] | None, args: Sequence[str] | None) -> list[str]:
        extra = (args if args is not None else self.cmd) if self.takes_args else []
        return [*self.entrypoint, *(self._translate(a) for a in extra)]

    def _translate(self, arg: str) -> str:
        """`/path` or `--flag=/path` with the path as the pod's mounts (or the stand-in's root) hold it."""
        flag, equals, value = arg.partition("=")
        if equals and value.startswith("/"):
            return f"{flag}={self.path(value)}"
        return self.path(arg)


def resolve(reference: str, placement: Placement, root: Path) -> RunSpec | None:
    """The RunSpec of the stand-in for `reference` (its root directory under `root`), or None when the
    table has none. Raises `ImageError` when the stand-in cannot run here."""
    standin = find(reference)
    if standin is None:
        return None
    argv, env = standin.program(placement)
    rootfs = root / standin.name
    for directory in ("", *standin.directories):
        (rootfs / directory).mkdir(parents=True, exist_ok=True)
    digest = "sha256:" + hashlib.sha256(f"stand-in:{standin.name}".encode()).hexdigest()
    spec = StandInRunSpec(
        reference=reference,
        digest=digest,
        argv=[],
        env=env,
        working_dir=rootfs,
        user=None,
        rootfs=rootfs,
        python=Path(sys.executable),
        entrypoint=argv,
        cmd=list(standin.default_args),
        labels={"io.shopstack.stand-in": standin.name},
        takes_args=standin.takes_args,
    )
    return replace(spec, argv=spec.command(None, None))

"""Image stand-ins: the one table of third-party images the deploy uses and the local programs that run
in their place.

A node's image store holds only the images the project builds. A pod whose image the store does not hold
but whose repository this table names runs the stand-in instead: the Kafka images run the Tansu broker
(storage in the AWS emulator's S3 when the node knows the emulator, so a broker restart keeps topics,
messages and committed offsets), the OpenTelemetry Collector images run the collector stand-in on the
container's `--config` (`sim.telemetry.collector`), the Jaeger v2 images its stand-in, the same engine
with Jaeger's storage and query API (`sim.standins.jaeger`), the Prometheus images run the `prometheus`
binary with the container's own args (paths as the pod's volumes mount them), the Grafana images a
stand-in serving the provisioned datasources and dashboards (`sim.standins.grafana`), the Alertmanager
and blackbox exporter images Debian's `prometheus-alertmanager` and `prometheus-blackbox-exporter`
binaries (through `sim.standins.alertmanager` and `sim.standins.blackbox`), the kube-state-metrics images
`sim.standins.kube_state_metrics`, the cluster-autoscaler images `sim.standins.cluster_autoscaler`
(against the cluster's API and the EKS node groups in the AWS emulator), and the Python base image the
host's Python (for the monitoring's standard-library programs: `python` or `python3` and a script,
nothing else). An image that is neither in
the store nor in this table stays an `ErrImagePull`.

A stand-in is a `RunSpec` like any image's, so the kubelet starts, probes and stops it the same way; its
root filesystem is an empty directory of its own under the image store (where paths the pod does not
mount, such as Prometheus's `/prometheus`, land).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from containers.nodestore.errors import ImageError
from containers.nodestore.reference import parse
from containers.nodestore.runspec import RunSpec
from sim.aws import CREDENTIALS, REGION
from sim.supervisor.state import MARKER, read_state

KAFKA_PORT = 9092
OTLP_HTTP_PORT = 4318
JAEGER_QUERY_PORT = 16686
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
ALERTMANAGER_PORT = 9093
BLACKBOX_PORT = 9115
KUBE_STATE_METRICS_PORT = 8080
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
    #: the local cloud's state directory (`sim.supervisor.state.MARKER`), where its ALB's address is
    cloud_state: str | None = field(default_factory=lambda: os.environ.get(MARKER))


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
    #: runs the pod's `command` too (the image's own program is a Python interpreter: `python_base`)
    takes_command: bool = False


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
    return [
        sys.executable,
        "-m",
        "sim.telemetry.collector",
        "--listen-address",
        placement.pod_ip,
    ], _python_env()


def _jaeger(placement: Placement) -> tuple[list[str], dict[str, str]]:
    return [sys.executable, "-m", "sim.standins.jaeger", "--listen-address", placement.pod_ip], _python_env()


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


def _binary(name: str, package: str, what: str) -> str:
    binary = shutil.which(name, path=HOST_PATH)
    if binary is None:
        raise ImageError(
            f"the {what} stand-in needs the `{name}` binary, which is not installed here "
            f"(Debian: apt-get install {package})"
        )
    return binary


def _alertmanager(placement: Placement) -> tuple[list[str], dict[str, str]]:
    binary = _binary("prometheus-alertmanager", "prometheus-alertmanager", "Alertmanager")
    listen = f"{placement.pod_ip}:{ALERTMANAGER_PORT}"
    return [
        sys.executable,
        "-m",
        "sim.standins.alertmanager",
        "--listen",
        listen,
        "--",
        binary,
    ], _python_env()


def _blackbox(placement: Placement) -> tuple[list[str], dict[str, str]]:
    binary = _binary("prometheus-blackbox-exporter", "prometheus-blackbox-exporter", "blackbox exporter")
    listen = f"{placement.pod_ip}:{BLACKBOX_PORT}"
    return [sys.executable, "-m", "sim.standins.blackbox", "--listen", listen, "--", binary], _python_env()


def _kube_state_metrics(placement: Placement) -> tuple[list[str], dict[str, str]]:
    if placement.api_server is None:
        raise ImageError(
            "the kube-state-metrics stand-in needs the cluster's API, which this node does not know"
        )
    argv = [sys.executable, "-m", "sim.standins.kube_state_metrics", "--api-server", placement.api_server]
    return [*argv, "--listen", placement.pod_ip, "--"], _python_env()


def _cluster_autoscaler(placement: Placement) -> tuple[list[str], dict[str, str]]:
    if placement.api_server is None or placement.aws_endpoint is None:
        raise ImageError(
            "the cluster-autoscaler stand-in needs the cluster's API and the AWS emulator, which this node "
            "does not know"
        )
    argv = [sys.executable, "-m", "sim.standins.cluster_autoscaler", "--api-server", placement.api_server]
    argv += ["--aws-endpoint", placement.aws_endpoint, "--listen", placement.pod_ip, "--"]
    return argv, _python_env() | CREDENTIALS | {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}


def local_alb(cloud_state: str | None) -> str | None:
    """The local cloud's ALB as its pods reach it (its data plane's address), or None outside a cloud."""
    if not cloud_state:
        return None
    state = read_state(Path(cloud_state))
    record = next((c for c in state.components if c.name == "alb"), None) if state else None
    return record.address.rstrip("/") if record is not None and record.address else None


def _python_base(placement: Placement) -> tuple[list[str], dict[str, str]]:
    env = {"PATH": HOST_PATH, "LANG": "C.UTF-8"}
    # The local ALB serves on a loopback port of its own, not at the DNS name the Ingress's status gives
    # (which resolves nowhere here): a program that looks for the shop's public address there is given it
    # as `SHOP_URL` (a variable the pod declares wins)
    alb = local_alb(placement.cloud_state)
    if alb is not None:
        env["SHOP_URL"] = alb
    return [], env


STANDINS: tuple[StandIn, ...] = (
    StandIn("kafka", ("apache/kafka", "bitnami/kafka", "confluentinc/cp-kafka"), _kafka),
    StandIn(
        "otel-collector",
        ("otel/opentelemetry-collector", "otel/opentelemetry-collector-contrib"),
        _collector,
        takes_args=True,
        default_args=("--config=/etc/otelcol-contrib/config.yaml",),
        directories=("etc",),
    ),
    StandIn(
        "jaeger",
        ("jaegertracing/jaeger",),
        _jaeger,
        takes_args=True,
        directories=("etc",),
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
    StandIn(
        "alertmanager",
        ("prom/alertmanager", "prometheus/alertmanager"),
        _alertmanager,
        takes_args=True,
        default_args=("--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"),
        directories=("alertmanager", "etc/alertmanager"),
    ),
    StandIn(
        "blackbox-exporter",
        ("prom/blackbox-exporter", "prometheus/blackbox-exporter"),
        _blackbox,
        takes_args=True,
        default_args=("--config.file=/etc/blackbox_exporter/config.yml",),
    ),
    StandIn(
        "kube-state-metrics",
        ("kube-state-metrics/kube-state-metrics", "bitnami/kube-state-metrics"),
        _kube_state_metrics,
        takes_args=True,
        default_args=(f"--port={KUBE_STATE_METRICS_PORT}",),
    ),
    StandIn(
        "cluster-autoscaler",
        ("autoscaling/cluster-autoscaler",),
        _cluster_autoscaler,
        takes_args=True,
        default_args=("--cloud-provider=aws",),
    ),
    StandIn("python", ("python",), _python_base, default_args=("python3",), takes_command=True),
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


@dataclass(frozen=True)
class PythonRunSpec(RunSpec):
    """The Python base image's stand-in: the pod's `command` (or its `args`, which replace the image's
    `CMD ["python3"]`) runs as the image would, `python`/`python3` being the host's interpreter and the
    pod's paths its mounts; any other program is refused in one line."""

    def command(self, command: Sequence[str] | None, args: Sequence[str] | None) -> list[str]:
        argv = [*command, *(args or [])] if command else list(self.cmd if args is None else args)
        if not argv or PurePosixPath(argv[0]).name not in ("python", "python3", "python3.11"):
            program = argv[0] if argv else "nothing"
            raise ImageError(
                "the Python image's stand-in runs python programs only "
                f"(command python3 SCRIPT ...), not {program!r}"
            )
        return [self.entrypoint[0], *(self.path(a) for a in argv[1:])]


@dataclass(frozen=True)
class StandIns:
    """The stand-ins of one node's kubelet (its `KubeletConfig.standins`): their root directories under
    `root`, the AWS emulator and the cluster API the node knows."""

    root: Path
    aws_endpoint: str | None = None
    api_server: str | None = None

    def __call__(self, reference: str, pod_ip: str) -> RunSpec | None:
        return resolve(reference, Placement(pod_ip, self.aws_endpoint, self.api_server), self.root)


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
    if standin.takes_command:
        python = PythonRunSpec(
            reference=reference,
            digest=digest,
            argv=[],
            env=env,
            working_dir=rootfs,
            user=None,
            rootfs=rootfs,
            python=Path(sys.executable),
            entrypoint=[sys.executable],
            cmd=list(standin.default_args),
            labels={"io.shopstack.stand-in": standin.name},
        )
        return replace(python, argv=python.command(None, None))
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

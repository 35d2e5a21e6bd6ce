"""The shop's nine services as one declarative table: what each needs from the cluster.

A row says how many replicas a service runs by default (and why), whether it autoscales, who calls it
(ARCHITECTURE.md's "talks to" column, inverted: its NetworkPolicy admits exactly these), which peers,
Kafka and AWS table it uses (its environment), and its size. `CALLERS` is the same graph as data, for
the tests and the integration suite; it also holds the platform components (Kafka, the collector,
Prometheus, Grafana) and the load generator. `ANYWHERE` as a caller means every source, in or outside the
cluster (the ALB sends to frontend-proxy's pod IPs directly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

ANYWHERE: Final = "*"
HTTP_PORT = 8080
#: the service the ALB forwards to (its pods are the target group's IP targets)
ALB_BACKEND: Final = "frontend-proxy"
KAFKA = "kafka"
COLLECTOR = "otel-collector"
PROMETHEUS = "prometheus"
GRAFANA = "grafana"
#: the trace store (`infra.model.jaeger`): the collector sends it spans, Grafana and the suite query it
JAEGER = "jaeger"
#: Locust with the demo's shoppers (`infra.model.load_generator`); it calls frontend-proxy (anyone may)
LOAD_GENERATOR = "load-generator"
#: alerting and synthetic monitoring (`infra.model.alertmanager`, `kube_state_metrics`, `synthetic`): deployed
#: with Prometheus, and only with it
ALERTMANAGER = "alertmanager"
ALERT_RECEIVER = "alert-receiver"
KUBE_STATE_METRICS = "kube-state-metrics"
SYNTHETIC = "synthetic-monitor"
MONITORING: Final = frozenset({PROMETHEUS, ALERTMANAGER, ALERT_RECEIVER, KUBE_STATE_METRICS, SYNTHETIC})


@dataclass(frozen=True)
class Size:
    """Requests and limits of one container."""

    cpu: str = "100m"
    memory: str = "128Mi"
    cpu_limit: str = "500m"
    memory_limit: str = "256Mi"


@dataclass(frozen=True)
class ServiceRow:
    name: str
    replicas: int
    why: str
    callers: frozenset[str]
    peers: tuple[str, ...] = ()  # services whose `<PEER>_URL` it reads
    kafka: bool = False
    table: str | None = None  # "carts", "orders" or "checkouts": the DynamoDB table it owns
    autoscaled: bool = False
    size: Size = field(default_factory=Size)
    extra_env: tuple[tuple[str, str], ...] = ()
    grace_seconds: int = 20
    #: what a release checks on a new colour before it takes traffic (besides /readyz): a read that
    #: exercises the service's own work
    smoke_path: str = "/readyz"

    @property
    def module(self) -> str:
        return "services." + self.name.replace("-", "_")


_HTTP = "stateless HTTP on the request path: two replicas across zones survive a node or zone loss"
SERVICES: Final[tuple[ServiceRow, ...]] = (
    ServiceRow(
        "frontend-proxy",
        2,
        _HTTP,
        frozenset({ANYWHERE}),
        extra_env=(
            ("FRONTEND_URL", "http://frontend:8080"),
            ("OTEL_COLLECTOR_URL", "http://otel-collector:4318"),
        ),
        autoscaled=True,
        smoke_path="/",
    ),
    ServiceRow(
        "frontend",
        2,
        _HTTP,
        frozenset({"frontend-proxy"}),
        peers=("product-catalog", "recommendation", "cart", "checkout"),
        autoscaled=True,
        smoke_path="/",
    ),
    ServiceRow(
        "product-catalog",
        2,
        _HTTP,
        frozenset({"frontend", "recommendation", "checkout"}),
        autoscaled=True,
        smoke_path="/products",
    ),
    ServiceRow(
        "recommendation",
        1,
        "off the buying path (pages render without it) and cached: one replica, restarted if it fails",
        frozenset({"frontend"}),
        peers=("product-catalog",),
        smoke_path="/recommendations",
    ),
    ServiceRow(
        "cart",
        2,
        _HTTP,
        frozenset({"frontend", "checkout"}),
        table="carts",
        autoscaled=True,
        smoke_path="/carts/release-smoke-check",
    ),
    ServiceRow(
        "checkout",
        2,
        _HTTP,
        frozenset({"frontend"}),
        peers=("cart", "product-catalog", "payment"),
        kafka=True,
        table="checkouts",
        autoscaled=True,
    ),
    ServiceRow("payment", 2, _HTTP, frozenset({"checkout"}), autoscaled=True),
    ServiceRow(
        "accounting",
        1,
        "a Kafka consumer of a one-partition-per-consumer topic: more replicas only idle; writes are "
        "idempotent, so a restart redelivers safely",
        frozenset(),
        kafka=True,
        table="orders",
        grace_seconds=30,
    ),
    ServiceRow(
        "fraud-detection",
        1,
        "a Kafka consumer off the buying path: one replica keeps up, a restart resumes from its offset",
        frozenset(),
        kafka=True,
        grace_seconds=30,
        smoke_path="/flagged",
    ),
)
SERVICE_NAMES: Final = tuple(row.name for row in SERVICES)
KAFKA_CLIENTS: Final = frozenset(row.name for row in SERVICES if row.kafka)

#: who may open a connection to each component (besides Prometheus, which scrapes every pod's metrics port)
CALLERS: Final[dict[str, frozenset[str]]] = {
    **{row.name: row.callers for row in SERVICES},
    KAFKA: KAFKA_CLIENTS,
    COLLECTOR: frozenset(SERVICE_NAMES),
    PROMETHEUS: frozenset({GRAFANA}),
    JAEGER: frozenset({COLLECTOR, GRAFANA}),  # spans in (OTLP); its query API (and by port-forward)
    GRAFANA: frozenset(),  # reached by `kubectl port-forward`, which NetworkPolicies do not filter
    LOAD_GENERATOR: frozenset(),  # its web UI, the same way
    ALERTMANAGER: frozenset({PROMETHEUS}),  # alerts in; its web UI by port-forward
    ALERT_RECEIVER: frozenset({ALERTMANAGER}),  # notifications in; the suite reads them by port-forward
    KUBE_STATE_METRICS: frozenset(),  # scraped only
    SYNTHETIC: frozenset({PROMETHEUS}),  # probes run on Prometheus' scrapes; its targets are discovered
}


def row(name: str) -> ServiceRow:
    return next(r for r in SERVICES if r.name == name)

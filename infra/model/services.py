"""The shop's nine services as one declarative table: what each needs from the cluster.

A row says how many replicas a service runs by default (and why), whether it autoscales, who calls it
(ARCHITECTURE.md's "talks to" column, inverted: its NetworkPolicy admits exactly these), which peers,
Kafka and AWS table it uses (its environment), and its size. `CALLERS` is the same graph as data, for
the tests and the integration suite; it also holds the platform components (Kafka, the collector,
Prometheus, Grafana). `ANYWHERE` as a caller means every source, in or outside the cluster (the ALB
sends to frontend-proxy's pod IPs directly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

ANYWHERE: Final = "*"
HTTP_PORT = 8080
KAFKA = "kafka"
COLLECTOR = "otel-collector"
PROMETHEUS = "prometheus"
GRAFANA = "grafana"


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
    table: str | None = None  # "carts" or "orders": the DynamoDB table it owns
    autoscaled: bool = False
    size: Size = field(default_factory=Size)
    extra_env: tuple[tuple[str, str], ...] = ()
    grace_seconds: int = 20

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
    ),
    ServiceRow(
        "frontend",
        2,
        _HTTP,
        frozenset({"frontend-proxy"}),
        peers=("product-catalog", "recommendation", "cart", "checkout"),
        autoscaled=True,
    ),
    ServiceRow(
        "product-catalog",
        2,
        _HTTP,
        frozenset({"frontend", "recommendation", "checkout"}),
        autoscaled=True,
    ),
    ServiceRow(
        "recommendation",
        1,
        "off the buying path (pages render without it) and cached: one replica, restarted if it fails",
        frozenset({"frontend"}),
        peers=("product-catalog",),
    ),
    ServiceRow("cart", 2, _HTTP, frozenset({"frontend", "checkout"}), table="carts", autoscaled=True),
    ServiceRow(
        "checkout",
        2,
        _HTTP,
        frozenset({"frontend"}),
        peers=("cart", "product-catalog", "payment"),
        kafka=True,
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
    GRAFANA: frozenset(),  # reached by `kubectl port-forward`, which NetworkPolicies do not filter
}


def row(name: str) -> ServiceRow:
    return next(r for r in SERVICES if r.name == name)

"""NetworkPolicies: deny all ingress in the namespace, then admit for each component exactly its callers
(`CALLERS`) on the ports it serves, and Prometheus on its metrics port. Egress is not restricted (DNS,
AWS APIs and the OTLP exporter go out from every pod).
"""

from __future__ import annotations

from typing import Final

from infra.model import alertmanager, common, kube_state_metrics, synthetic
from infra.model.common import Obj
from infra.model.config import ModelConfig
from infra.model.load_generator import WEB_PORT
from infra.model.services import (
    ALERT_RECEIVER,
    ALERTMANAGER,
    ANYWHERE,
    CALLERS,
    COLLECTOR,
    GRAFANA,
    HTTP_PORT,
    JAEGER,
    KAFKA,
    KUBE_STATE_METRICS,
    LOAD_GENERATOR,
    MONITORING,
    PROMETHEUS,
    SERVICE_NAMES,
    SYNTHETIC,
)

#: the ports each component serves to its callers
SERVED_PORTS: Final[dict[str, tuple[int, ...]]] = {
    **{name: (HTTP_PORT,) for name in SERVICE_NAMES},
    KAFKA: (9092,),
    COLLECTOR: (4317, 4318),
    PROMETHEUS: (9090,),
    GRAFANA: (3000,),
    JAEGER: (4317, 4318, 16686),  # OTLP gRPC and HTTP in, the query API out
    LOAD_GENERATOR: (WEB_PORT,),
    ALERTMANAGER: (alertmanager.PORT,),
    ALERT_RECEIVER: (alertmanager.RECEIVER_PORT,),
    KUBE_STATE_METRICS: (kube_state_metrics.PORT,),
    # the journey (metrics, the probes' targets) and the blackbox exporter's probes: Prometheus' scrapes
    SYNTHETIC: (synthetic.JOURNEY_PORT, synthetic.BLACKBOX_PORT),
}
#: the port Prometheus scrapes on each component (Kafka exports no Prometheus metrics)
METRICS_PORTS: Final[dict[str, int]] = {
    **{name: HTTP_PORT for name in SERVICE_NAMES},
    COLLECTOR: 8889,
    PROMETHEUS: 9090,
    GRAFANA: 3000,
    ALERTMANAGER: alertmanager.PORT,
    ALERT_RECEIVER: alertmanager.RECEIVER_PORT,
    KUBE_STATE_METRICS: kube_state_metrics.PORT,
    SYNTHETIC: synthetic.JOURNEY_PORT,
}
DEFAULT_DENY = "default-deny-ingress"


def _ports(numbers: tuple[int, ...] | list[int]) -> list[Obj]:
    return [{"protocol": "TCP", "port": number} for number in numbers]


def _from(names: frozenset[str]) -> list[Obj]:
    expression = {"key": common.NAME_LABEL, "operator": "In", "values": sorted(names)}
    return [{"podSelector": {"matchExpressions": [expression]}}]


def policy(config: ModelConfig, component: str) -> Obj:
    callers = CALLERS[component]
    rules: list[Obj] = []
    if ANYWHERE in callers:
        rules.append({"ports": _ports(SERVED_PORTS[component])})
    elif callers:
        rules.append({"from": _from(callers), "ports": _ports(SERVED_PORTS[component])})
    if component in METRICS_PORTS:
        rules.append({"from": _from(frozenset({PROMETHEUS})), "ports": _ports([METRICS_PORTS[component]])})
    spec: Obj = {"podSelector": {"matchLabels": common.selector(component)}, "policyTypes": ["Ingress"]}
    if rules:
        spec["ingress"] = rules
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": common.metadata(config, f"allow-{component}", component),
        "spec": spec,
    }


def network_policies(config: ModelConfig) -> list[Obj]:
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": common.metadata(config, DEFAULT_DENY, DEFAULT_DENY),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    components = [c for c in CALLERS if c not in MONITORING or config.prometheus]
    return [deny, *(policy(config, component) for component in components)]

"""The kubelet's model, without processes: pod parsing, env resolution, quantities, back-off, status."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pytest

from kube.quantity import memory_bytes, parse_quantity
from sim.kubelet.backoff import Backoff
from sim.kubelet.spec import ConfigError, PodSpec, container_env, expand
from sim.kubelet.status import ContainerStatus, State, exit_code, phase, terminated
from tests.kubelet.helpers import pod


class Config:
    def __init__(self, objects: Mapping[tuple[str, str], Mapping[str, str]]) -> None:
        self.objects = objects

    def data(self, kind: str, namespace: str, name: str) -> Mapping[str, str] | None:
        assert namespace == "shop"
        return self.objects.get((kind, name))


CONFIG = Config(
    {("ConfigMap", "settings"): {"LEVEL": "debug", "ZONE": "a"}, ("Secret", "card"): {"key": "s3cret"}}
)


def test_env_resolves_values_field_refs_config_maps_and_secrets() -> None:
    manifest = pod(
        "img",
        env=[
            {"name": "PORT", "value": "9090"},
            {"name": "URL", "value": "http://$(POD_IP):$(PORT)/$(UNSET)$$x"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}}},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "card", "key": "key"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}}},
        ],
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CM_"}],
    )
    spec = PodSpec.parse(manifest)
    env = container_env(spec, spec.containers[0], "127.61.0.9", CONFIG)
    assert env["URL"] == "http://$(POD_IP):9090/$(UNSET)$x"  # only earlier variables expand
    assert (env["POD_IP"], env["NAME"], env["NS"]) == ("127.61.0.9", "payment-0", "shop")
    assert (env["LEVEL"], env["KEY"], env["CM_ZONE"]) == ("debug", "s3cret", "a")
    assert "OPT" not in env


@pytest.mark.parametrize(
    "item",
    [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k"}}},
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "missing"}}},
        {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nothing"}}},
    ],
)
def test_unresolvable_env_is_a_config_error(item: dict[str, object]) -> None:
    spec = PodSpec.parse(pod("img", env=[item]))
    with pytest.raises(ConfigError):
        container_env(spec, spec.containers[0], "127.0.0.1", CONFIG)


def test_pod_parsing_reads_probes_limits_hooks_and_defaults() -> None:
    manifest = pod(
        "img",
        readinessProbe={"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 2},
        livenessProbe={"tcpSocket": {"port": 8080}, "failureThreshold": 5, "timeoutSeconds": 3},
        startupProbe={"exec": {"command": ["true"]}},
        resources={"limits": {"memory": "128Mi", "cpu": "500m"}},
        lifecycle={"preStop": {"httpGet": {"path": "/drain", "port": 8080}}},
    )
    spec = PodSpec.parse(manifest)
    container = spec.containers[0]
    assert spec.restart_policy == "Always"
    assert container.memory_limit == 128 * 2**20
    assert container.readiness is not None
    assert container.readiness.period == 2
    assert container.port_number(container.readiness.handler.port) == 8080
    assert container.liveness is not None
    assert container.liveness.handler.tcp
    assert (container.liveness.failure_threshold, container.liveness.timeout) == (5, 3)
    assert container.startup is not None
    assert container.startup.handler.exec_command == ["true"]
    assert container.pre_stop is not None
    assert container.pre_stop.http_path == "/drain"
    assert PodSpec.parse({"metadata": {"name": "p"}, "spec": {"containers": []}}).grace == 30


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("128Mi", 128 * 2**20),
        ("1G", 10**9),
        ("500m", Decimal("0.5")),
        ("2e3", 2000),
        ("1.5Gi", 3 * 2**29),
        (64, 64),
    ],
)
def test_quantities(text: str | int, value: Decimal | int) -> None:
    assert parse_quantity(text) == value


def test_a_bad_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        memory_bytes("12 apples")


def test_back_off_restarts_at_once_then_doubles_to_the_ceiling_and_resets() -> None:
    backoff = Backoff(base=10, ceiling=300)
    assert [backoff.next_delay(1) for _ in range(8)] == [0, 10, 20, 40, 80, 160, 300, 300]
    assert backoff.next_delay(600) == 0  # ran for twice the ceiling: a fresh start


def test_expand_escapes_and_leaves_unknown_references() -> None:
    assert expand("$(A)-$$(A)-$(B)", {"A": "1"}) == "1-$(A)-$(B)"


def test_status_shapes_and_phase() -> None:
    assert exit_code(-9) == 137
    assert exit_code(-15) == 143
    killed = terminated(137, None, oom=True)
    assert killed.to_api()["terminated"]["reason"] == "OOMKilled"
    assert terminated(0, None, oom=False).to_api()["terminated"]["reason"] == "Completed"
    assert terminated(1, None, oom=False).to_api()["terminated"]["reason"] == "Error"
    status = ContainerStatus(
        "app", "img", restart_count=2, last_state=killed, state=State("waiting", "CrashLoopBackOff")
    )
    body = status.to_api()
    assert body["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    assert body["lastState"]["terminated"]["exitCode"] == 137
    assert phase([status], will_restart=True) == "Running"
    assert phase([ContainerStatus("app", "img")], will_restart=True) == "Pending"
    assert phase([ContainerStatus("app", "img", state=killed)], will_restart=False) == "Failed"
    done = ContainerStatus("app", "img", state=terminated(0, None, oom=False))
    assert phase([done], will_restart=False) == "Succeeded"

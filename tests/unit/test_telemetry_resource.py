"""The resource a service's telemetry carries: its name and the build it runs, unless the standard
`OTEL_*` variables say otherwise."""

from __future__ import annotations

import pytest

from services.common.telemetry import service_resource


@pytest.fixture(autouse=True)
def no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)


def test_the_resource_names_the_service_and_its_version() -> None:
    attributes = service_resource("payment", "0.1.0+0123456789ab").attributes
    assert attributes["service.name"] == "payment"
    assert attributes["service.version"] == "0.1.0+0123456789ab"


def test_otel_resource_attributes_win_over_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=from-otel,deployment.environment=local")
    attributes = service_resource("payment", "0.1.0+0123456789ab").attributes
    assert attributes["service.version"] == "from-otel"
    assert attributes["deployment.environment"] == "local"


def test_other_resource_attributes_keep_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "payment-blue")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=payment-blue-1")
    attributes = service_resource("payment", "dev").attributes
    assert (attributes["service.name"], attributes["service.version"]) == ("payment-blue", "dev")
    assert attributes["k8s.pod.name"] == "payment-blue-1"

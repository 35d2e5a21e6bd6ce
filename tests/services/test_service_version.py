"""Every service names the build it runs (`SERVICE_VERSION`, `dev` by default): in every response's
`X-Service-Version`, in `/healthz` and as its telemetry's `service.version`, so that the two colours of a
blue-green release can be told apart from outside."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx

from sim.supervisor.process import free_port
from sim.telemetry.client import TelemetryQuery
from tests.services.own_process import own_process
from tests.support.shop import HOST, Shop
from tests.support.shopper import VISA

BUILD = "0.1.0+0123456789ab"


def charge(client: httpx.Client, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {
        "idempotency_key": str(uuid.uuid4()),
        "amount": {"currency_code": "USD", "units": 1},
        "credit_card": VISA,
    }
    return client.post("/charges", json=body, headers=headers)


def test_a_service_reports_its_build_in_every_response_its_health_and_its_telemetry(
    shop: Shop, telemetry: TelemetryQuery
) -> None:
    with (
        own_process(shop, "payment", SERVICE_VERSION=BUILD) as payment,
        httpx.Client(base_url=payment.url, timeout=10) as client,
    ):
        health = client.get("/healthz")
        assert health.json() == {"status": "ok", "version": BUILD}
        trace_id = os.urandom(16).hex()
        responses = [
            health,
            client.get("/readyz"),
            client.get("/metrics"),
            charge(client, {"traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"}),
            client.post("/charges", json={}),
            client.get("/no-such-path"),
        ]
        assert [r.status_code for r in responses] == [200, 200, 200, 201, 400, 404]
        assert {r.headers["X-Service-Version"] for r in responses} == {BUILD}

        [server] = [
            span
            for span in telemetry.wait_for_trace(trace_id, services=[payment.telemetry_name])
            if span.kind == "SERVER"
        ]
        assert server.resource["service.version"] == BUILD
        assert server.resource["service.name"] == payment.telemetry_name


def test_a_service_started_without_service_version_is_dev(shop: Shop, telemetry: TelemetryQuery) -> None:
    shop.ensure("payment")
    with httpx.Client(base_url=shop.url("payment"), timeout=10) as client:
        health = client.get("/healthz")
        assert health.json() == {"status": "ok", "version": "dev"}
        assert health.headers["X-Service-Version"] == "dev"
        trace_id = os.urandom(16).hex()
        charged = charge(client, {"traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"})
        assert charged.headers["X-Service-Version"] == "dev"
    spans = telemetry.wait_for_trace(trace_id, services=["payment"])
    assert {span.resource["service.version"] for span in spans} == {"dev"}


def test_a_service_version_that_cannot_be_a_header_stops_start_up_naming_it(shop: Shop) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.payment"],
        env={**shop.env, "PORT": str(free_port(HOST)), "SERVICE_VERSION": "two words"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("payment: invalid configuration: SERVICE_VERSION: String should match pattern")

"""Alerting, end to end, at every stage: Prometheus loads every rule of `alerts.yaml` (on the stage's clock)
and finds Alertmanager; a failure flag under load makes its alert fire and reach the receiver Alertmanager
notifies (`alert-receiver`, read through the stage's way to a Service), and clearing the flag resolves it;
the synthetic monitor probes the public shop through the ALB and its metrics say it succeeds (where the
stage has an ALB: not kind).

Every wait is bounded by the stage's own timings: the rule's `for:` and window, Alertmanager's grouping
waits and the scrape interval, all on the stage's clock (`Settings.alert_scale`: a tenth of AWS's on the
local cloud), plus the time a flag takes to reach the pods.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.model import alerting, alertmanager, synthetic
from infra.model.services import ALERT_RECEIVER
from tests.integration.load import CheckoutLoad
from tests.integration.observe import prometheus_query
from tests.integration.stages import Stage
from tests.support.waiting import eventually

#: a flag reaches every pod within this (the ConfigMap volume's refresh, then the services' reload)
FLAG_SECONDS = 60
#: slack for evaluation and notification delivery on a loaded machine
SLACK_SECONDS = 60


@pytest.fixture(scope="module")
def prometheus(stage: Stage) -> str:
    if stage.prometheus_url is None:
        pytest.skip(f"the {stage.name} stage runs no Prometheus, so no alerting")
    return stage.prometheus_url


@pytest.fixture(scope="module")
def receiver(stage: Stage, prometheus: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stage.service_url(ALERT_RECEIVER, alertmanager.RECEIVER_PORT), timeout=10
    ) as client:
        yield client


def rule(name: str, scale: float) -> dict[str, Any]:
    found = [r for g in alerting.rules(scale)["groups"] for r in g["rules"] if r.get("alert") == name]
    assert found, f"no alert {name} in alerts.yaml"
    return found[0]


def fires_within(stage: Stage, name: str) -> float:
    """How long after its cause the alert `name` reaches the receiver at the latest, on this stage."""
    scale = stage.settings.alert_scale
    found = rule(name, scale)
    windows = alerting.windows(found["expr"])
    scrape = alerting.scrape_seconds(scale)
    waits = alerting.seconds(alerting.scaled(alertmanager.GROUP_WAIT, scale, 1))
    return (
        alerting.seconds(found.get("for", "0s"))
        + max(windows, default=0)
        + waits
        + 4 * scrape
        + SLACK_SECONDS
    )


def resolves_within(stage: Stage, name: str) -> float:
    """How long after its cause is gone the alert's resolution reaches the receiver at the latest."""
    scale = stage.settings.alert_scale
    found = rule(name, scale)
    windows = alerting.windows(found["expr"])
    interval = alerting.seconds(alerting.scaled(alertmanager.GROUP_INTERVAL, scale, 1))
    scrape = alerting.scrape_seconds(scale)
    return max(windows, default=0) + interval + 4 * scrape + SLACK_SECONDS


def notified(
    receiver: httpx.Client, since: float, status: str, alertname: str, **labels: str
) -> list[dict[str, Any]]:
    """The alerts of notifications received after `since` with `status` for `alertname` and `labels`."""
    answer = receiver.get("/alerts", params={"since": str(since)})
    answer.raise_for_status()
    return [
        alert
        for notification in answer.json()["notifications"]
        for alert in notification["alerts"]
        if alert["status"] == status
        and alert["labels"].get("alertname") == alertname
        and all(alert["labels"].get(k) == v for k, v in labels.items())
    ]


def alert_states(prometheus: str, name: str) -> str:
    """What Prometheus says of the alert now, for a failure's message."""
    try:
        found = prometheus_query(prometheus, f'ALERTS{{alertname="{name}"}}')
    except (httpx.HTTPError, AssertionError) as err:
        return f"(Prometheus: {err})"
    return ", ".join(f"{a['metric'].get('service', '')}:{a['metric']['alertstate']}" for a in found) or "none"


def test_prometheus_loads_every_rule_and_finds_alertmanager(stage: Stage, prometheus: str) -> None:
    def loaded() -> set[str] | None:
        answer = httpx.get(f"{prometheus}/api/v1/rules", params={"type": "alert"}, timeout=10).json()
        names = {r["name"] for g in answer["data"]["groups"] for r in g["rules"]}
        return names if names >= set(alerting.alert_names()) else None

    eventually(loaded, timeout=60, interval=2, what="every alert of alerts.yaml loaded by Prometheus")
    answer = httpx.get(f"{prometheus}/api/v1/rules", params={"type": "alert"}, timeout=10).json()
    scale = stage.settings.alert_scale
    expected = sorted(
        (r["alert"], alerting.seconds(r.get("for", "0s")))
        for g in alerting.rules(scale)["groups"]
        for r in g["rules"]
    )
    assert (
        sorted((r["name"], r["duration"]) for g in answer["data"]["groups"] for r in g["rules"]) == expected
    )

    def discovered() -> list[str] | None:
        answer = httpx.get(f"{prometheus}/api/v1/alertmanagers", timeout=10).json()
        return [a["url"] for a in answer["data"]["activeAlertmanagers"]] or None

    urls = eventually(discovered, timeout=60, interval=2, what="Prometheus sending to Alertmanager")
    assert all(url.endswith("/api/v2/alerts") for url in urls)


def test_synthetic_checks_of_the_public_shop_succeed(stage: Stage, prometheus: str) -> None:
    if not stage.has_alb:
        pytest.skip(f"the {stage.name} stage has no ALB: no public entrance for the synthetic checks")
    scale = stage.settings.alert_scale
    interval = alerting.seconds(alerting.scaled(synthetic.JOURNEY_INTERVAL, scale, 5))
    bound = 2 * interval + 4 * alerting.scrape_seconds(scale) + SLACK_SECONDS

    def probes() -> dict[str, str] | None:
        found = {
            r["metric"]["probe"]: r["value"][1]
            for r in prometheus_query(prometheus, 'probe_success{job="synthetic-http"}')
        }
        return found if set(found) == set(synthetic.PROBES) and set(found.values()) == {"1"} else None

    eventually(
        probes, timeout=bound, interval=2, what=f"every page probe {sorted(synthetic.PROBES)} succeeding"
    )

    def journey() -> list[dict[str, Any]] | None:
        found = prometheus_query(prometheus, 'synthetic_journey_success{journey="checkout"} == 1')
        return found or None

    eventually(journey, timeout=bound, interval=2, what="a successful synthetic checkout journey")
    steps = prometheus_query(prometheus, 'synthetic_journey_step_duration_seconds{journey="checkout"}')
    assert {s["metric"]["step"] for s in steps} == {"home", "product", "add_to_cart", "checkout"}
    durations = prometheus_query(prometheus, 'probe_duration_seconds{job="synthetic-http"}')
    assert {d["metric"]["probe"] for d in durations} == set(synthetic.PROBES)


def wait_notified(
    receiver: httpx.Client,
    prometheus: str,
    since: float,
    status: str,
    name: str,
    labels: dict[str, str],
    bound: float,
) -> list[dict[str, Any]]:
    """The `status` notifications of alert `name` with `labels` received after `since`, within `bound` s."""
    try:
        return eventually(
            lambda: notified(receiver, since, status, name, **labels), timeout=bound, interval=2, what=name
        )
    except AssertionError:
        raise AssertionError(
            f"{name} {labels} not {status} at the receiver within {bound:.0f}s; "
            f"Prometheus has it: {alert_states(prometheus, name)}"
        ) from None


@pytest.mark.timeout(3600)  # in AWS's time, firing and resolving take minutes each
def test_payment_failure_fires_alerts_that_reach_the_receiver_and_resolve_when_cleared(
    stage: Stage, prometheus: str, receiver: httpx.Client
) -> None:
    alerts = {"ServiceErrorRateHigh": {"service": "payment"}}
    if stage.has_alb:  # the synthetic journey buys through the ALB
        alerts["SyntheticJourneyFailing"] = {"journey": "checkout"}
    started = time.time()
    with CheckoutLoad(stage.shop_url, shoppers=2, max_seconds=1200, max_checkouts=100_000):
        stage.set_flag("paymentFailure", "1")
        try:
            for name, labels in alerts.items():
                bound = FLAG_SECONDS + fires_within(stage, name)
                wait_notified(receiver, prometheus, started, "firing", name, labels, bound)
        finally:
            stage.set_flag("paymentFailure", "off")
        cleared = time.time()
        alert = notified(receiver, started, "firing", "ServiceErrorRateHigh", service="payment")[0]
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["summary"].startswith("payment: ")
        for name, labels in alerts.items():
            bound = FLAG_SECONDS + resolves_within(stage, name)
            wait_notified(receiver, prometheus, cleared, "resolved", name, labels, bound)

"""Every provisioned dashboard shows data, at every stage: each query of each panel goes through Grafana's own
data source API (`POST /api/ds/query`, the request Grafana's frontend sends for a panel over the last
15 minutes) while the shop is under load, and each returns at least one series with a value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.model.grafana import DASHBOARD_FILES
from tests.integration.load import MixedLoad
from tests.integration.stages import Stage
from tests.support.waiting import eventually

#: the panels' range, as a dashboard opened on "Last 15 minutes" asks
RANGE_SECONDS = 15 * 60
#: how long a panel may take to have data under load (rates need a few scrapes; the consumers, the
#: synthetic journey and the HPAs report on their own schedules)
DATA_SECONDS = 240
MAX_DATA_POINTS = 1024


@pytest.fixture(scope="module")
def grafana(stage: Stage) -> Iterator[httpx.Client]:
    if stage.prometheus_url is None:
        pytest.skip(f"the {stage.name} stage runs no Prometheus: the dashboards have no data source")
    with httpx.Client(base_url=stage.service_url("grafana", 3000), timeout=30) as client:
        eventually(lambda: client.get("/api/health").status_code == 200, timeout=60, what="Grafana's API")
        yield client


@pytest.fixture(scope="module")
def under_load(stage: Stage, grafana: httpx.Client) -> Iterator[MixedLoad]:
    with MixedLoad(stage.shop_url, shoppers=3, max_seconds=900, pause_seconds=0.1) as load:
        yield load


def provisioned(grafana: httpx.Client) -> list[dict[str, Any]]:
    found = grafana.get("/api/search", params={"type": "dash-db"}).json()
    return [grafana.get(f"/api/dashboards/uid/{item['uid']}").json()["dashboard"] for item in found]


def queries(grafana: httpx.Client, stage: Stage) -> list[tuple[str, dict[str, Any]]]:
    """(dashboard / panel / refId, target) of every query of every panel (but the synthetic monitoring's
    where the stage has no ALB for it to probe)."""
    found = []
    for board in provisioned(grafana):
        if "synthetic" in board.get("tags", []) and not stage.has_alb:
            continue
        for panel in board.get("panels") or []:
            for target in panel.get("targets") or []:
                source = target.get("datasource") or panel.get("datasource")
                found.append(
                    (
                        f"{board['title']} / {panel['title']} / {target['refId']}",
                        {**target, "datasource": source},
                    )
                )
    return found


def frontend_request(target: dict[str, Any], sources: dict[str, int]) -> dict[str, Any]:
    """The body Grafana's frontend posts for one panel query over the last 15 minutes."""
    now = int(time.time() * 1000)
    query = {
        **target,
        "datasourceId": sources.get(target["datasource"]["uid"]),
        "interval": target.get("interval", ""),
        "intervalMs": 15000,
        "maxDataPoints": MAX_DATA_POINTS,
        "range": not target.get("instant", False),
        "instant": bool(target.get("instant", False)),
        "utcOffsetSec": 0,
        "exemplar": False,
        "requestId": f"shopstack-{target['refId']}",
    }
    return {"queries": [query], "from": str(now - RANGE_SECONDS * 1000), "to": str(now)}


def has_values(answer: dict[str, Any], ref_id: str) -> bool:
    result = answer["results"][ref_id]
    return any(
        any(value is not None for value in frame["data"]["values"][1])
        for frame in result.get("frames") or []
        if len(frame["data"]["values"]) >= 2
    )


def test_the_repository_dashboards_are_provisioned(grafana: httpx.Client) -> None:
    titles = {board["uid"] for board in provisioned(grafana)}
    assert titles == {json.loads(path.read_text())["uid"] for path in DASHBOARD_FILES.glob("*.json")}


@pytest.mark.timeout(DATA_SECONDS + 600)
def test_every_panel_of_every_dashboard_shows_data_under_load(
    stage: Stage, grafana: httpx.Client, under_load: MixedLoad
) -> None:
    sources = {s["uid"]: s["id"] for s in grafana.get("/api/datasources").json()}
    pending = dict(queries(grafana, stage))
    assert pending, "no panel queries in the provisioned dashboards"
    answers: dict[str, Any] = {}

    def all_have_data() -> bool:
        for name, target in list(pending.items()):
            response = grafana.post("/api/ds/query", json=frontend_request(target, sources))
            answers[name] = (response.status_code, response.text[:500])
            assert response.status_code == 200, f"{name}: {response.status_code} {response.text[:500]}"
            if has_values(response.json(), target["refId"]):
                del pending[name]
        return not pending

    try:
        eventually(all_have_data, timeout=DATA_SECONDS, interval=5, what="data in every panel")
    except AssertionError:
        empty = "\n".join(f"  {name}: {target['expr']}" for name, target in pending.items())
        raise AssertionError(f"panels without data after {DATA_SECONDS}s under load:\n{empty}") from None
    assert not under_load.failures[:1] or len(under_load.failures) < len(under_load.answers) / 10

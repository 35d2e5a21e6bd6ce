"""The ASGI app in process (no server): watch bookmarks and timeouts, Table cells, human durations."""

from __future__ import annotations

import json

import httpx
import pytest

from sim.k8s import resources
from sim.k8s.app import KubeApp
from sim.k8s.store import Store
from sim.k8s.tables import human_duration

pytestmark = pytest.mark.timeout(30)


async def test_watch_sends_bookmarks_and_ends_at_timeout() -> None:
    store = Store()
    app = KubeApp(store, bookmark_seconds=0.2)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://k8s") as client:
        rv = str(store.rv)
        store.create(resources.by_key("configmaps"), {"metadata": {"name": "a"}}, "default")
        params = {
            "watch": "true",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "1",
        }
        response = await client.get("/api/v1/namespaces/default/configmaps", params=params)
    events = [json.loads(line) for line in response.text.splitlines() if line]
    assert events[0]["type"] == "ADDED"
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks
    assert bookmarks[-1]["object"]["metadata"]["resourceVersion"] == str(store.rv)


async def test_watch_too_old_resource_version_is_expired() -> None:
    store = Store(history=2)
    app = KubeApp(store)
    for i in range(5):
        store.create(resources.by_key("configmaps"), {"metadata": {"name": f"c{i}"}}, "default")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://k8s") as client:
        params = {"watch": "1", "resourceVersion": "1", "timeoutSeconds": "1"}
        response = await client.get("/api/v1/configmaps", params=params)
    event = json.loads(response.text.splitlines()[0])
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (20 * 86400, "20d"),
        (800 * 86400, "2y"),
    ],
)
def test_human_duration_matches_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text

"""The load generator against the real shop (the services as processes, frontend-proxy in front): one
shopper running each of its tasks once, seen request by request through Locust's request event (its
session cookie, the synthetic baggage, its cart, its orders, the flood flag read from the flags file);
the integration suite's loads, whose accounting names exactly the requests that failed; and `python -m
services.load_generator` as the image runs it, configured by Locust's variables, its statistics on its web
UI, and refusing a flags file it cannot read.

Locust runs in child processes (`tests.integration.load.start_child`): it patches the standard library
for gevent as it is imported, which pytest's process must not be.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.flag_contract import Flag
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.integration.load import CheckoutLoad, MixedLoad, ShopLoad, start_child
from tests.support.shop import HOST, FlagsFile, Shop
from tests.support.waiting import eventually

#: every task of the demo's user, in this order, once: the last view of the cart follows both checkouts
TASKS = (
    "index",
    "browse_product",
    "get_recommendations",
    "view_cart",
    "add_to_cart",
    "view_cart",
    "checkout",
    "checkout_multi",
    "view_cart",
    "flood_home",
)
FLOOD = 3
PRODUCT = r"/api/products/[A-Z0-9]{10}"
ADD = rf"GET {PRODUCT}\nPOST /api/cart"
EXPECTED = re.compile(
    "\n".join(
        [
            "GET /",  # the session, as the user starts
            "GET /",
            f"GET {PRODUCT}",
            "GET /api/recommendations",
            "GET /api/cart",
            ADD,
            "GET /api/cart",
            ADD,
            "POST /api/checkout",
            f"(?:{ADD}\n){{2,4}}POST /api/checkout",
            "GET /api/cart",
            *["GET /"] * FLOOD,
        ]
    )
)
RUN_SECONDS = 60


@pytest.fixture(scope="module")
def shop_url(shop: Shop) -> str:
    shop.ensure("frontend-proxy")
    return shop.url("frontend-proxy")


def run_once(shop_url: str, flags: FlagsFile) -> list[dict[str, Any]]:
    """One user running `TASKS` once each against the shop: every request it made, as the child saw it."""
    config = {
        "shop_url": shop_url,
        "users": 1,
        "pause_seconds": 0,
        "max_seconds": RUN_SECONDS,
        "tasks": list(TASKS),
        "once": True,
        "details": True,
    }
    child, stderr = start_child(config, {"FLAGS_FILE": str(flags.path)})
    try:
        out, _ = child.communicate(timeout=RUN_SECONDS + 40)
        stderr.seek(0)
        assert child.returncode == 0, stderr.read()[-3000:]
    finally:
        child.kill()
        stderr.close()
    return [json.loads(line) for line in out.splitlines()]


def test_one_shopper_runs_each_task_in_its_session_with_the_synthetic_baggage(
    shop_url: str, clean_flags: FlagsFile
) -> None:
    clean_flags.set(Flag.LOAD_GENERATOR_FLOOD_HOMEPAGE, FLOOD)
    requests = run_once(shop_url, clean_flags)

    assert EXPECTED.fullmatch("\n".join(r["what"] for r in requests)), [r["what"] for r in requests]
    assert [r for r in requests if r["failed"]] == []
    assert all(r["sent"].get("baggage") == "synthetic_request=true" for r in requests)
    first, *later = requests
    assert "cookie" not in first["sent"], "a new shopper has no session yet"
    cookies = {r["sent"].get("cookie") for r in later}
    assert len(cookies) == 1, cookies
    (cookie,) = cookies
    session = re.fullmatch(r"session_id=([A-Za-z0-9_-]+)", cookie or "")
    assert session, cookie
    carts = [r["json"] for r in requests if r["what"] == "GET /api/cart"]
    assert {cart["user_id"] for cart in carts} == {session.group(1)}, "the cart is the session's"
    assert carts[0]["items"] == []
    assert len(carts[1]["items"]) == 1
    assert carts[2]["items"] == [], "the checkouts emptied the cart"
    orders = [r["order"] for r in requests if r["order"]]
    assert len(orders) == 2
    assert all(r["status"] == 201 for r in requests if r["what"] == "POST /api/checkout")


def test_no_flood_while_the_flag_is_off(shop_url: str, clean_flags: FlagsFile) -> None:
    clean_flags.set(Flag.LOAD_GENERATOR_FLOOD_HOMEPAGE, 0)
    requests = run_once(shop_url, clean_flags)
    assert [r["what"] for r in requests][-2:] == ["POST /api/checkout", "GET /api/cart"]


def test_the_checkout_load_places_orders_and_stops_at_its_count(shop_url: str) -> None:
    with CheckoutLoad(shop_url, shoppers=2, max_checkouts=6, pause_seconds=0.05, max_seconds=60) as load:
        eventually(lambda: len(load.placed) >= 6, timeout=60, what="six orders")
    assert load.failures == []
    assert 6 <= load.attempts <= 8, "two shoppers overshoot by at most the checkouts they are in"
    whats = {a.what.split("/api/products/")[0] for a in load.answers}
    assert whats == {"GET /", "GET ", "POST /api/cart", "POST /api/checkout"}, whats
    assert len(set(load.placed)) == len(load.placed)


def test_the_mixed_load_names_each_failed_request_and_nothing_else(
    shop_url: str, clean_flags: FlagsFile
) -> None:
    clean_flags.set(Flag.PRODUCT_CATALOG_FAILURE, True)
    with MixedLoad(shop_url, shoppers=3, max_requests=150, max_seconds=60) as load:
        eventually(lambda: len(load.answers) >= 150, timeout=60, what="150 answers")
    failed = [a for a in load.answers if not 200 <= a.status < 400]
    failing_product = [a for a in load.answers if a.what == "GET /api/products/OLJCESPC7Z"]
    assert failing_product, "no shopper looked at the failing product (one in ten, 150 requests)"
    assert failed == failing_product
    assert all(a.status == 503 for a in failed)
    assert len(load.failures) == len(failed)
    assert all("GET /api/products/OLJCESPC7Z: 503" in line for line in load.failures)
    assert all(a.version for a in load.answers), "every answer names frontend-proxy's version"
    assert len(load.answers) <= 150 + 3 * 12, "the load stops at its count, less the tasks in flight"
    assert load.since(max(a.at for a in load.answers)) == []
    # what the suite's summary reports of it
    figures = ShopLoad.finished[-1]
    assert (figures.kind, figures.requests, figures.failed) == ("MixedLoad", len(load.answers), len(failed))
    assert figures.placed == len(load.placed)


@pytest.fixture
def web_port() -> int:
    return free_port(HOST)


def load_generator(workdir: Path, env: dict[str, str], name: str = "load-generator") -> ManagedProcess:
    return ManagedProcess(
        name,
        [sys.executable, "-m", "services.load_generator"],
        workdir / "logs" / f"{name}.log",
        env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", **env},
    ).start()


@pytest.fixture
def running(
    workdir: Path, shop_url: str, flags: FlagsFile, web_port: int
) -> Iterator[tuple[ManagedProcess, str]]:
    process = load_generator(
        workdir,
        {
            "LOCUST_HOST": shop_url,
            "LOCUST_USERS": "3",
            "LOCUST_SPAWN_RATE": "3",
            "LOCUST_AUTOSTART": "true",
            "BIND_HOST": HOST,
            "LOCUST_WEB_PORT": str(web_port),
            "FLAGS_FILE": str(flags.path),
        },
    )
    url = f"http://{HOST}:{web_port}"
    try:
        process.wait_ready(lambda: http_ok(url), timeout=60)
        yield process, url
    finally:
        process.stop(grace=20)


def test_python_m_runs_locust_as_its_variables_say_with_its_statistics_on_the_web_ui(
    running: tuple[ManagedProcess, str],
) -> None:
    process, url = running

    def swarming() -> dict[str, Any] | None:
        stats = httpx.get(f"{url}/stats/requests", timeout=5).json()
        return stats if stats["state"] == "running" and stats["user_count"] == 3 else None

    stats = eventually(swarming, timeout=30, what="three users swarming")
    assert stats is not None

    def home_page() -> dict[str, Any] | None:
        stats = httpx.get(f"{url}/stats/requests", timeout=5).json()["stats"]
        found = next((s for s in stats if s["name"] == "/"), None)
        return found if found is not None and found["num_requests"] >= 3 else None

    # each user starts its session on the home page; the three start one after another
    home = eventually(home_page, timeout=30, what="three requests of the home page in the statistics")
    assert home is not None
    assert home["num_failures"] == 0
    assert process.stop(grace=20) is not None
    assert "Got SIGTERM signal" in process.log_path.read_text()


def test_a_flags_file_it_cannot_read_stops_it_at_once_naming_the_file(workdir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "flags.json"
    broken.write_text("{not json")
    process = load_generator(workdir, {"FLAGS_FILE": str(broken)}, name="load-generator-bad-flags")
    try:
        assert process.popen is not None
        assert process.popen.wait(timeout=30) == 2
    finally:
        process.stop()
    (line,) = process.log_path.read_text().strip().splitlines()
    assert line.startswith(f"load-generator: FLAGS_FILE {broken} is not JSON")

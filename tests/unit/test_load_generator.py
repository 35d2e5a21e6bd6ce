"""The load generator's user classes and configuration: the OpenTelemetry Demo's tasks and weights and its
1 to 10 s waits, products the catalog has, shoppers payment accepts, the flood flag read from a real
flags file as it changes, what `python -m services.load_generator` gives Locust, and the locustfile as
Locust's own loader sees it. (Their behaviour against the real shop is tests/services/test_load_generator.py.)

The classes are imported without gevent's patching of the standard library, which this test process
(threads, asyncio) must not get; nothing here runs Locust.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest

from services.common.contracts import PlaceOrder
from services.common.flag_contract import NUMERIC_FLAGS, Flag, flag_definitions
from services.common.flags import FlagsNotReady
from services.load_generator.__main__ import LOCUSTFILE, RESOLVER, flags_problem, locust_defaults
from services.load_generator.flood import MAX_FLOOD, FloodFlag
from services.payment.cards import check_card
from tests.support.waiting import eventually

CATALOG = Path(__file__).resolve().parents[2] / "services" / "product_catalog" / "products.json"
DEMO_WEIGHTS = {
    "index": 1,
    "browse_product": 10,
    "get_recommendations": 3,
    "view_cart": 3,
    "add_to_cart": 2,
    "checkout": 1,
    "checkout_multi": 1,
    "flood_home": 5,
}


@pytest.fixture(scope="module")
def users() -> ModuleType:
    """`services.load_generator.users`, imported with Locust's monkey patching skipped."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCUST_SKIP_MONKEY_PATCH", "1")
        patch.delenv("FLAGS_FILE", raising=False)
        return importlib.import_module("services.load_generator.users")


def test_the_tasks_and_their_weights_are_the_demos(users: ModuleType) -> None:
    assert Counter(task.__name__ for task in users.WebsiteUser.tasks) == DEMO_WEIGHTS


def test_shoppers_wait_one_to_ten_seconds_between_tasks(users: ModuleType) -> None:
    waits = [users.WebsiteUser.wait_time(None) for _ in range(2000)]
    assert all(1 <= wait <= 10 for wait in waits)
    assert min(waits) < 1.5
    assert max(waits) > 9.5


def test_every_request_says_it_is_synthetic(users: ModuleType) -> None:
    assert users.BAGGAGE == "synthetic_request=true"


def test_the_products_are_the_demos_and_all_in_the_catalog(users: ModuleType) -> None:
    catalog = {product["id"] for product in json.loads(CATALOG.read_text())["products"]}
    assert len(users.PRODUCTS) == 10
    assert set(users.PRODUCTS) <= catalog


def test_every_shopper_is_a_valid_checkout_with_a_card_payment_accepts(users: ModuleType) -> None:
    for shopper in users.SHOPPERS:
        order = PlaceOrder.model_validate(shopper)
        card = order.credit_card
        assert check_card(card.number, card.expiration_year, card.expiration_month, date.today()) in (
            "visa",
            "mastercard",
        )
    assert len({s["email"] for s in users.SHOPPERS}) == len(users.SHOPPERS)


def test_locusts_loader_finds_the_website_user_alone_in_the_locustfile(users: ModuleType) -> None:
    from locust.util.load_locustfile import load_locustfile

    classes, shapes = load_locustfile(str(LOCUSTFILE))
    assert classes == {"WebsiteUser": users.WebsiteUser}
    assert shapes == []


def test_the_flood_flag_is_a_numeric_flag_of_the_contract() -> None:
    assert Flag("loadGeneratorFloodHomepage") in NUMERIC_FLAGS
    flag = flag_definitions({Flag.LOAD_GENERATOR_FLOOD_HOMEPAGE: 100})["flags"]["loadGeneratorFloodHomepage"]
    assert flag["variants"] == {"on": 100, "off": 0}
    assert flag["defaultVariant"] == "on"


def write_flags(path: Path, flood: float) -> None:
    """Replace the file atomically, as a ConfigMap volume update does."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(flag_definitions({Flag.LOAD_GENERATOR_FLOOD_HOMEPAGE: flood})))
    tmp.replace(path)


def test_the_flood_follows_the_flags_file_as_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    write_flags(path, 0)
    flood = FloodFlag(path)
    try:
        assert flood.count() == 0
        write_flags(path, 7)
        eventually(lambda: flood.count() == 7, timeout=10, what="the flag's new value")
        write_flags(path, 2.7)
        eventually(lambda: flood.count() == 2, timeout=10, what="a fraction, made whole")
        write_flags(path, MAX_FLOOD * 100)
        eventually(lambda: flood.count() == MAX_FLOOD, timeout=10, what="the cap")
        write_flags(path, 0)
        eventually(lambda: flood.count() == 0, timeout=10, what="the flag off again")
    finally:
        flood.close()


def test_without_a_flags_file_there_is_no_flood(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLAGS_FILE", raising=False)
    flood = FloodFlag.from_env()
    assert flood.path is None
    assert flood.count() == 0


def test_a_flags_file_that_is_not_flagd_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text("{not json")
    with pytest.raises(FlagsNotReady, match=f"FLAGS_FILE {path} is not JSON"):
        FloodFlag(path).load()
    assert (flags_problem({"FLAGS_FILE": str(path)}) or "").startswith(f"FLAGS_FILE {path} is not JSON: ")
    assert flags_problem({"FLAGS_FILE": str(tmp_path / "missing.json")}) == (
        f"FLAGS_FILE {tmp_path / 'missing.json'} cannot be read: No such file or directory"
    )
    assert flags_problem({}) is None


def test_python_m_adds_only_defaults_to_locusts_own_variables() -> None:
    defaults = locust_defaults({})
    assert defaults == {"LOCUST_LOCUSTFILE": str(LOCUSTFILE), "GEVENT_RESOLVER": RESOLVER}
    assert Path(defaults["LOCUST_LOCUSTFILE"]).is_file()
    assert defaults["LOCUST_LOCUSTFILE"].endswith(".py"), "Locust loads a locustfile by its path"
    assert locust_defaults({"BIND_HOST": "127.0.9.9"})["LOCUST_WEB_HOST"] == "127.0.9.9"
    given = {"BIND_HOST": "127.0.9.9", "LOCUST_WEB_HOST": "0.0.0.0", "LOCUST_LOCUSTFILE": "mine.py"}
    assert locust_defaults(given) == {"GEVENT_RESOLVER": RESOLVER}

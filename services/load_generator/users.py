"""The shop's synthetic shoppers: the OpenTelemetry Demo's Locust user (demo 2.2.0,
`src/load-generator/locustfile.py`) written for this shop's API.

A `WebsiteUser` starts a session (the home page, whose answer sets the `session_id` cookie the shop's cart
belongs to) and sends the W3C baggage `synthetic_request=true` on every request, so that telemetry can
tell its traffic from people's. Then, waiting 1 to 10 s between tasks, it picks by the demo's weights:

| task | weight | requests |
|---|---|---|
| `index` | 1 | `GET /` |
| `browse_product` | 10 | `GET /api/products/<id>` |
| `get_recommendations` | 3 | `GET /api/recommendations?product_ids=<id>` |
| `view_cart` | 3 | `GET /api/cart` |
| `add_to_cart` | 2 | `GET /api/products/<id>`, `POST /api/cart` (1 to 10 of it) |
| `checkout` | 1 | one add to cart, `POST /api/checkout` |
| `checkout_multi` | 1 | two to four adds to cart, `POST /api/checkout` |
| `flood_home` | 5 | `GET /` as many times as the flag `loadGeneratorFloodHomepage` says (none when off) |

The demo's tasks for services this shop does not have (ads, product reviews, the AI assistant) are left
out. Unlike the demo, whose checkouts each invent a user id, a shopper here is its session: it checks out
what its session's cart holds, and does not go on to pay when putting the product in the cart failed.

Importing this module imports Locust, which patches the standard library for gevent, but starts nothing:
`python -m services.load_generator` runs Locust, and tests drive these classes with Locust's library API.
"""

from __future__ import annotations

import random
from typing import Any, Final

from locust import HttpUser, between, task

from services.load_generator.flood import FloodFlag

#: the W3C `baggage` header on every request of a synthetic shopper
BAGGAGE: Final = "synthetic_request=true"
#: the demo's products (all in the catalog, services/product_catalog/products.json)
PRODUCTS: Final = (
    "0PUK6V6EV0",
    "1YMWWN1N4O",
    "2ZYFJ3GM2N",
    "66VCHSJNUP",
    "6E92ZMYYFZ",
    "9SIQT8TOJO",
    "L9ECAV7KIM",
    "LS4PSXUNUM",
    "OLJCESPC7Z",
    "HQTGWGPNH4",
)
QUANTITIES: Final = (1, 2, 3, 4, 5, 10)
MULTI_ITEM_COUNTS: Final = (2, 3, 4)
#: the request name the product pages share in Locust's statistics
PRODUCT_NAME: Final = "/api/products/[id]"


def _shopper(
    email: str, street: str, zip_code: str, city: str, state: str, country: str, card: str
) -> dict[str, Any]:
    """A checkout form as `POST /api/checkout` takes it, with a card payment accepts (Luhn, type, expiry)."""
    return {
        "email": email,
        "address": {
            "street_address": street,
            "zip_code": zip_code,
            "city": city,
            "state": state,
            "country": country,
        },
        "credit_card": {"number": card, "cvv": "123", "expiration_year": 2039, "expiration_month": 12},
    }


#: who checks out: made-up shoppers with VISA and MasterCard test numbers
SHOPPERS: Final = (
    _shopper("ada@example.com", "12 Analytical Row", "94043", "Mountain View", "CA", "United States",
             "4577463706433047"),
    _shopper("grace@example.com", "1 Compiler Court", "98052", "Redmond", "WA", "United States",
             "4452940394029070"),
    _shopper("alan@example.com", "7 Bletchley Lane", "95014", "Cupertino", "CA", "United States",
             "5179434546157681"),
    _shopper("edsger@example.com", "3 Semaphore Street", "98109", "Seattle", "WA", "United States",
             "4294904108537242"),
    _shopper("barbara@example.com", "9 Abstraction Avenue", "K2P1L4", "Ottawa", "ON", "Canada",
             "2221457712707703"),
    _shopper("donald@example.com", "64 Literate Way", "94103", "San Francisco", "CA", "United States",
             "5571791702365083"),
)  # fmt: skip


class WebsiteUser(HttpUser):
    """One synthetic shopper with its own session (cookie jar), the demo's tasks and weights."""

    wait_time = between(1, 10)
    #: the flood flag, shared by every user of the process (the flags file is read once)
    flood = FloodFlag.from_env()

    def on_start(self) -> None:
        self.client.headers["baggage"] = BAGGAGE
        self.index()

    @task(1)
    def index(self) -> None:
        self.client.get("/")

    @task(10)
    def browse_product(self) -> None:
        self.client.get(f"/api/products/{random.choice(PRODUCTS)}", name=PRODUCT_NAME)

    @task(3)
    def get_recommendations(self) -> None:
        self.client.get(
            "/api/recommendations",
            params={"product_ids": random.choice(PRODUCTS)},
            name="/api/recommendations",
        )

    @task(3)
    def view_cart(self) -> None:
        self.client.get("/api/cart")

    @task(2)
    def add_to_cart(self) -> None:
        self.put_in_cart()

    @task(1)
    def checkout(self) -> None:
        if self.put_in_cart():
            self.place_order()

    @task(1)
    def checkout_multi(self) -> None:
        for _ in range(random.choice(MULTI_ITEM_COUNTS)):
            if not self.put_in_cart():
                return
        self.place_order()

    @task(5)
    def flood_home(self) -> None:
        for _ in range(self.flood.count()):
            self.client.get("/")

    def put_in_cart(self) -> bool:
        """Look at a product, then put 1 to 10 of it in the cart; whether both worked."""
        product = random.choice(PRODUCTS)
        if not self.client.get(f"/api/products/{product}", name=PRODUCT_NAME).ok:
            return False
        item = {"product_id": product, "quantity": random.choice(QUANTITIES)}
        return bool(self.client.post("/api/cart", json=item).ok)

    def place_order(self) -> None:
        self.client.post("/api/checkout", json=random.choice(SHOPPERS))

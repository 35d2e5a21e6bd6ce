"""A shopper using the storefront's JSON API, with its own session cookie, as the browser pages do."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

VISA = {"number": "4432801561520454", "cvv": "672", "expiration_year": 2039, "expiration_month": 1}
ADDRESS = {
    "street_address": "1600 Amphitheatre Parkway",
    "city": "Mountain View",
    "state": "CA",
    "country": "United States",
    "zip_code": "94043",
}


def new_traceparent() -> tuple[str, str]:
    """A W3C traceparent starting a new sampled trace, and its trace id."""
    trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01", trace_id


class Shopper:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def add(self, product_id: str, quantity: int = 1) -> httpx.Response:
        return self.http.post("/api/cart", json={"product_id": product_id, "quantity": quantity})

    def cart(self) -> dict[str, Any]:
        response = self.http.get("/api/cart")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def checkout(self, headers: dict[str, str] | None = None, **overrides: Any) -> httpx.Response:
        body = {"email": "shopper@example.com", "address": ADDRESS, "credit_card": VISA, **overrides}
        return self.http.post("/api/checkout", json=body, headers=headers)


def metric_value(metrics_url: str, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`, scraped from `/metrics`."""
    text = httpx.get(metrics_url, timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total

"""The fraud rules: pure functions of an order, each naming its reason and the points it adds.

An order's score is the sum of the points of the rules it trips, capped at `MAX_SCORE`; it is flagged
when the score reaches `FLAG_THRESHOLD`. One strong signal (a total that does not add up, a very large
total) flags an order alone; the weaker ones flag it in pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.common.orders import OrderPlaced

FLAG_THRESHOLD = 50
MAX_SCORE = 100

HIGH_TOTAL = Decimal(5000)
MANY_LINES = 10
BULK_QUANTITY = 20

# Country-code top-level domains and the names a shipping address may give their country. Only these are
# judged: a generic domain (.com) or a country not listed says nothing about a mismatch.
COUNTRY_NAMES: dict[str, frozenset[str]] = {
    tld: frozenset(names)
    for tld, names in {
        "us": ("us", "usa", "united states", "united states of america"),
        "uk": ("gb", "uk", "united kingdom", "great britain"),
        "ca": ("ca", "canada"),
        "de": ("de", "germany", "deutschland"),
        "fr": ("fr", "france"),
        "nl": ("nl", "netherlands", "the netherlands"),
        "es": ("es", "spain"),
        "it": ("it", "italy"),
        "ch": ("ch", "switzerland"),
        "se": ("se", "sweden"),
        "pl": ("pl", "poland"),
        "jp": ("jp", "japan"),
        "cn": ("cn", "china"),
        "in": ("in", "india"),
        "br": ("br", "brazil"),
        "au": ("au", "australia"),
        "ru": ("ru", "russia", "russian federation"),
        "ng": ("ng", "nigeria"),
    }.items()
}
KNOWN_COUNTRIES = frozenset().union(*COUNTRY_NAMES.values())


@dataclass(frozen=True)
class Finding:
    """A rule tripped: its reason (the rule's name) and the points it adds to the score."""

    reason: str
    points: int


Rule = Callable[[OrderPlaced], Finding | None]


@dataclass(frozen=True)
class Assessment:
    score: int
    reasons: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return self.score >= FLAG_THRESHOLD


def inconsistent_total(order: OrderPlaced) -> Finding | None:
    """The total is not the items plus shipping (or mixes currencies): the order was tampered with."""
    try:
        expected = sum(
            (item.unit_price.times(item.quantity) for item in order.items),
            start=order.shipping_cost,
        )
    except ValueError:
        return Finding("inconsistent_total", 100)
    if expected != order.total:
        return Finding("inconsistent_total", 100)
    return None


def high_total(order: OrderPlaced) -> Finding | None:
    if order.total.to_decimal() >= HIGH_TOTAL:
        return Finding("high_total", 50)
    return None


def many_items(order: OrderPlaced) -> Finding | None:
    if len(order.items) >= MANY_LINES:
        return Finding("many_items", 25)
    return None


def bulk_quantity(order: OrderPlaced) -> Finding | None:
    """Many units of one product, as a reseller testing a stolen card would buy."""
    if any(item.quantity >= BULK_QUANTITY for item in order.items):
        return Finding("bulk_quantity", 30)
    return None


def country_mismatch(order: OrderPlaced) -> Finding | None:
    """The email's country domain names another country than the shipping address."""
    tld = order.email.rsplit(".", 1)[-1].casefold() if "@" in order.email else ""
    country = " ".join(order.shipping_address.country.casefold().replace(".", "").split())
    if tld in COUNTRY_NAMES and country in KNOWN_COUNTRIES and country not in COUNTRY_NAMES[tld]:
        return Finding("country_mismatch", 30)
    return None


RULES: tuple[Rule, ...] = (inconsistent_total, high_total, many_items, bulk_quantity, country_mismatch)


def assess(order: OrderPlaced, rules: Sequence[Rule] = RULES) -> Assessment:
    findings = [finding for rule in rules if (finding := rule(order)) is not None]
    score = min(MAX_SCORE, sum(finding.points for finding in findings))
    return Assessment(score, tuple(finding.reason for finding in findings))

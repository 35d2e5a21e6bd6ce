"""fraud-detection's rules: a normal order passes; each suspicious trait is named and scored; strong signals
flag an order alone, weak ones in pairs. And the reviews kept are bounded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.money import Money
from services.common.orders import Address, OrderItem, OrderPlaced
from services.fraud_detection.results import Reviews
from services.fraud_detection.rules import FLAG_THRESHOLD, MAX_SCORE, assess

US = Address(
    street_address="1600 Amphitheatre Parkway",
    city="Mountain View",
    country="United States",
    zip_code="94043",
)


def item(product_id: str = "OLJCESPC7Z", quantity: int = 1, price: str = "101.96") -> OrderItem:
    return OrderItem(product_id=product_id, quantity=quantity, unit_price=Money.from_decimal(price))


def order(
    items: list[OrderItem] | None = None, shipping: str = "8.99", total: str | None = None, **fields: Any
) -> OrderPlaced:
    lines = items or [item(), item("66VCHSJNUP", 2, "349.95")]
    computed = sum((i.unit_price.times(i.quantity) for i in lines), start=Money.from_decimal(shipping))
    values: dict[str, Any] = {
        "order_id": "o-1",
        "user_id": "u-1",
        "email": "shopper@example.com",
        "items": lines,
        "shipping_address": US,
        "shipping_cost": Money.from_decimal(shipping),
        "total": Money.from_decimal(total) if total is not None else computed,
        "transaction_id": "t-1",
        "placed_at": datetime(2026, 11, 25, tzinfo=UTC),
        **fields,
    }
    return OrderPlaced(**values)


def test_a_normal_order_scores_zero_and_is_not_flagged() -> None:
    assessment = assess(order())
    assert (assessment.score, assessment.reasons, assessment.flagged) == (0, (), False)


def test_a_total_that_does_not_add_up_is_flagged_alone() -> None:
    assessment = assess(order(total="1.00"))
    assert assessment.reasons == ("inconsistent_total",)
    assert assessment.flagged


def test_a_total_in_another_currency_than_its_items_is_inconsistent() -> None:
    tampered = order().model_copy(update={"total": Money(currency_code="EUR", units=708, nanos=850_000_000)})
    assert "inconsistent_total" in assess(tampered).reasons


def test_a_very_large_total_is_flagged_alone() -> None:
    assessment = assess(order([item(quantity=10, price="600")]))
    assert assessment.reasons == ("high_total",)
    assert assessment.flagged


def test_a_total_just_under_the_limit_passes() -> None:
    assert assess(order([item(quantity=1, price="4991.00")])).reasons == ()


@pytest.mark.parametrize(
    ("suspicious", "reason"),
    [
        (order([item(f"P{n}", 1, "1.00") for n in range(10)]), "many_items"),
        (order([item(quantity=20, price="1.00")]), "bulk_quantity"),
        (order(email="someone@example.de"), "country_mismatch"),
    ],
    ids=["many-items", "bulk-quantity", "country-mismatch"],
)
def test_a_weak_signal_is_named_but_does_not_flag_alone(suspicious: OrderPlaced, reason: str) -> None:
    assessment = assess(suspicious)
    assert assessment.reasons == (reason,)
    assert 0 < assessment.score < FLAG_THRESHOLD
    assert not assessment.flagged


def test_two_weak_signals_flag_an_order() -> None:
    assessment = assess(order([item(quantity=25, price="2.00")], email="buyer@shop.ng"))
    assert set(assessment.reasons) == {"bulk_quantity", "country_mismatch"}
    assert assessment.flagged


def test_the_score_is_capped() -> None:
    everything = order(
        [item(f"P{n}", 30, "100.00") for n in range(10)], total="99999.00", email="x@example.ru"
    )
    assessment = assess(everything)
    assert len(assessment.reasons) == 5
    assert assessment.score == MAX_SCORE


@pytest.mark.parametrize(
    ("email", "country"),
    [
        ("someone@example.com", "Germany"),  # a generic domain says nothing
        ("someone@example.de", "Deutschland"),
        ("someone@example.co.uk", "United Kingdom"),
        ("someone@example.us", "U.S.A."),
        ("someone@example.de", "Atlantis"),  # a country the rule does not know says nothing
    ],
)
def test_a_matching_or_unknown_country_is_no_mismatch(email: str, country: str) -> None:
    shipped = order(email=email, shipping_address=US.model_copy(update={"country": country}))
    assert "country_mismatch" not in assess(shipped).reasons


def test_reviews_forget_the_oldest_orders_past_their_bound() -> None:
    reviews = Reviews(max_reviews=3)
    flagged = assess(order(total="1.00"))
    for n in range(5):
        reviews.add(f"o-{n}", flagged)
    assert reviews.get("o-0") is None
    assert reviews.get("o-1") is None
    assert [review.order_id for review in reviews.flagged(limit=10)] == ["o-4", "o-3", "o-2"]
    assert [review.order_id for review in reviews.flagged(limit=2)] == ["o-4", "o-3"]


def test_a_redelivered_order_is_counted_not_reviewed_again() -> None:
    reviews = Reviews()
    assert reviews.redelivered("o-1") is None
    reviews.add("o-1", assess(order()))
    again = reviews.redelivered("o-1")
    assert again is not None
    assert again.deliveries == 2

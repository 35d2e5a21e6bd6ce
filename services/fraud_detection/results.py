"""The reviews of the most recent orders, in bounded memory, with how often each order was delivered."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from services.fraud_detection.rules import Assessment

MAX_REVIEWS = 10_000


@dataclass
class Review:
    order_id: str
    assessment: Assessment
    deliveries: int = 1


class Reviews:
    """The last `max_reviews` orders by first delivery; older ones are forgotten (a redelivery of a
    forgotten order is reviewed afresh)."""

    def __init__(self, max_reviews: int = MAX_REVIEWS) -> None:
        self._reviews: OrderedDict[str, Review] = OrderedDict()
        self._max = max_reviews

    def redelivered(self, order_id: str) -> Review | None:
        """Count one more delivery of a reviewed order and return its review; None if it is new."""
        review = self._reviews.get(order_id)
        if review is not None:
            review.deliveries += 1
        return review

    def add(self, order_id: str, assessment: Assessment) -> Review:
        review = self._reviews[order_id] = Review(order_id, assessment)
        while len(self._reviews) > self._max:
            self._reviews.popitem(last=False)
        return review

    def get(self, order_id: str) -> Review | None:
        return self._reviews.get(order_id)

    def flagged(self, limit: int) -> list[Review]:
        """Up to `limit` flagged orders, the most recent first."""
        found: list[Review] = []
        for review in reversed(self._reviews.values()):
            if len(found) == limit:
                break
            if review.assessment.flagged:
                found.append(review)
        return found

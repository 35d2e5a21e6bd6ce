"""payment's card rules: Luhn, accepted types, expiry."""

from __future__ import annotations

from datetime import date

import pytest

from services.payment.cards import CardRejected, card_type, check_card, luhn_valid

TODAY = date(2026, 11, 25)


@pytest.mark.parametrize(
    ("number", "valid"),
    [("4432801561520454", True), ("4432801561520455", False), ("5555555555554444", True), ("0", True)],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("4111111111111111", "visa"),
        ("5555555555554444", "mastercard"),
        ("2221000000000009", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "unknown"),
    ],
)
def test_card_types(number: str, kind: str) -> None:
    assert card_type(number) == kind


def test_a_card_expiring_this_month_is_still_good() -> None:
    assert check_card("4111111111111111", 2026, 11, TODAY) == "visa"


def test_an_expired_card_names_the_expiry_field() -> None:
    with pytest.raises(CardRejected) as rejected:
        check_card("4111111111111111", 2026, 10, TODAY)
    assert rejected.value.field == "credit_card.expiration_year"


def test_an_amex_card_is_refused() -> None:
    with pytest.raises(CardRejected, match="only VISA or MasterCard"):
        check_card("378282246310005", 2030, 1, TODAY)

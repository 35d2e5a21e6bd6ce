"""Credit card rules: the Luhn checksum, the accepted card types and expiry."""

from __future__ import annotations

from datetime import date

ACCEPTED_TYPES = ("visa", "mastercard")


class CardRejected(ValueError):
    """The card cannot be charged; `field` names the part of the card at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def luhn_valid(number: str) -> bool:
    digits = [int(d) for d in number]
    checksum = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        checksum += digit
    return checksum % 10 == 0


def card_type(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4]) <= 2720:
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    return "unknown"


def check_card(number: str, expiration_year: int, expiration_month: int, today: date) -> str:
    """Return the card's type, or raise `CardRejected` naming the field that is wrong."""
    if not luhn_valid(number):
        raise CardRejected("credit_card.number", "credit card number fails the Luhn check")
    kind = card_type(number)
    if kind not in ACCEPTED_TYPES:
        raise CardRejected("credit_card.number", f"{kind} cards are not accepted; only VISA or MasterCard")
    if (expiration_year, expiration_month) < (today.year, today.month):
        raise CardRejected(
            "credit_card.expiration_year",
            f"the card expired in {expiration_month:02d}/{expiration_year}",
        )
    return kind

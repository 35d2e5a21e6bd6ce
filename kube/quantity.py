"""Kubernetes resource quantities (`128Mi`, `1G`, `500m`, `1.5`, `2e9`) as numbers."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|)$")


def parse_quantity(value: str | int | float) -> Decimal:
    """The value of a quantity; `ValueError` for a malformed one."""
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = QUANTITY.match(value.strip())
    if not match:
        raise ValueError(f"invalid quantity {value!r}")
    try:
        return Decimal(match.group(1)) * SUFFIXES[match.group(2)]
    except InvalidOperation as err:
        raise ValueError(f"invalid quantity {value!r}") from err


def memory_bytes(value: str | int | float) -> int:
    return int(parse_quantity(value))


def format_cpu(cores: float) -> str:
    """CPU usage as metrics-server reports it, in nanocores (`12345678n`)."""
    return f"{max(0, round(cores * 1e9))}n"


def format_memory(size: int) -> str:
    """Memory usage as metrics-server reports it, in KiB (`65432Ki`)."""
    return f"{max(0, size) // 1024}Ki"

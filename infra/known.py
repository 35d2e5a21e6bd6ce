"""What the deploy's inputs may name, and the one-line refusal of anything else.

The settings (`infra.settings`) and the ad-hoc operations (`infra.ops`) name the shop's services, its
flags (the flags' contract, `services.common.flag_contract`, which imports nothing of the services'
runtime) and replica counts. A name that is none of these is refused with the nearest known one, so a
slip of the keyboard says how to fix it: `unknown service 'cartt' (did you mean 'cart'?)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from difflib import get_close_matches
from typing import Final

from services.common.flag_contract import NUMERIC_FLAGS, Flag

#: the most replicas of one service the settings or `infra.ops.scale` accept: a bound against a slip
#: (30 for 3); production's busiest services run 3, and an HPA grows a service from its count
MOST_REPLICAS: Final = 20


def unknown(kind: str, name: str, known: Iterable[str]) -> str:
    """`unknown <kind> '<name>'`, with the nearest of `known` or, when none is near, all of them."""
    names = list(known)
    nearest = get_close_matches(name, names, n=1)
    hint = f"did you mean {nearest[0]!r}?" if nearest else f"known: {', '.join(names)}"
    return f"unknown {kind} {name!r} ({hint})"


def check_names(kind: str, names: Iterable[str], known: Iterable[str]) -> None:
    """Raise ValueError naming the first of `names` that is not in `known`."""
    choices = tuple(known)
    for name in names:
        if name not in choices:
            raise ValueError(unknown(kind, name, choices))


def flag_named(name: str) -> Flag:
    """The flag called `name`; ValueError naming it (and the nearest flag) when the contract has none."""
    try:
        return Flag(name)
    except ValueError:
        raise ValueError(unknown("flag", name, (f.value for f in Flag))) from None


def flag_setting(flag: Flag, value: object) -> bool | float:
    """`value` when `flag` takes it: true or false for a boolean flag, a number >= 0 for a numeric one (a
    probability or a count); ValueError naming the flag otherwise."""
    if flag in NUMERIC_FLAGS:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"flag {flag.value} takes a number >= 0, not {value!r}")
        return value
    if not isinstance(value, bool):
        raise ValueError(f"flag {flag.value} takes true or false, not {value!r}")
    return value


def replica_count(value: object) -> int:
    """`value` as a service's replica count: a whole number from 1 to `MOST_REPLICAS`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MOST_REPLICAS:
        raise ValueError(f"replicas takes a whole number from 1 to {MOST_REPLICAS}, not {value!r}")
    return value

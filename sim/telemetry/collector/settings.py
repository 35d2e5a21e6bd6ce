"""A component's settings against what the stand-in implements: defaults filled in, and any option the
stand-in does not implement refused in one line (so a setting is never silently ignored); the value types
the collector's configuration uses (durations, endpoints, percentages).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim.telemetry.collector.config import ConfigError

#: a default whose value may be anything (a list, a free-form mapping), taken as given
ANY = object()
_MISSING = object()
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def merged(where: str, given: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`given` over `defaults`, recursively; a key `defaults` does not have is refused."""
    result: dict[str, Any] = {}
    given = given or {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"{where}: must be a mapping, not {given!r}")
    for key in given:
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise ConfigError(
                f"{where}: option {key!r} is not implemented by the stand-in (options: {known})"
            )
    for key, default in defaults.items():
        value = given.get(key, _MISSING)
        if isinstance(default, Mapping):
            result[key] = merged(f"{where}::{key}", None if value is _MISSING else value, default)
        elif value is _MISSING:
            result[key] = None if default is ANY else default
        else:
            result[key] = value
    return result


def duration(where: str, value: Any) -> float:
    """Seconds of a Go duration (`"200ms"`, `"1m30s"`); a bare number is nanoseconds, as in Go."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a duration")
    if isinstance(value, int | float):
        return float(value) * 1e-9
    text = str(value).strip()
    if text == "0":
        return 0.0
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ConfigError(f"{where}: {value!r} is not a duration (such as 200ms, 5s, 1m)")
    return seconds


def number(where: str, value: Any, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {value!r} is not a number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{where}: {value} is out of range [{low}, {high}]")
    return float(value)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


#: hosts that mean "every interface": in a pod, the pod's own address
ANY_HOST = ("", "0.0.0.0", "::", "[::]")


def endpoint(where: str, value: Any) -> Endpoint:
    """A `host:port` to listen on."""
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{where}: {value!r} is not a host:port endpoint")
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {value!r} has no valid port")
    return Endpoint(host.strip("[]") if host.startswith("[") else host, int(port))

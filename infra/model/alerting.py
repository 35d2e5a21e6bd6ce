"""The monitoring's clock and the alert rules as a stage renders them.

`alerts.yaml` is written in AWS's time: each rule's `for:` and the range windows and offsets of its
expression are what production wants. A stage runs the monitoring on a faster clock
(`ModelConfig.alert_time_scale`, a tenth on an emulator): the scrape and evaluation interval, every rule's
`for:`, windows and offsets, and Alertmanager's grouping waits are AWS's times the scale, so that an alert
the integration suite provokes fires in seconds on the local cloud, and each still fires at its own `for:`
boundary (`python -m infra.model.promtool` checks the rules at both clocks). Two floors keep a fast clock
meaningful: the scrape interval is never under `MIN_SCRAPE_SECONDS`, and a range window never holds fewer
than `WINDOW_SCRAPES` scrapes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Final

import yaml

from infra.model.config import ModelConfig

ALERTS_FILE: Final = Path(__file__).with_name("alerts.yaml")
#: AWS's scrape and rule evaluation interval
SCRAPE_SECONDS: Final = 15
MIN_SCRAPE_SECONDS: Final = 5
#: a range window (rate, increase, ..._over_time) holds at least this many scrapes
WINDOW_SCRAPES: Final = 4

_UNITS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION: Final = r"(?:\d+(?:ms|[smhdwy]))+"
_PART = re.compile(r"(\d+)(ms|[smhdwy])")
#: `[5m]`, `[1h:30s]` (a subquery: range and resolution) and `offset 1h` in PromQL
_RANGE = re.compile(rf"\[({_DURATION})(?::({_DURATION})?)?\]")
_OFFSET = re.compile(rf"\boffset\s+(-?)({_DURATION})")


def seconds(duration: str) -> float:
    """A Prometheus duration (`1h30m`, `90s`, `250ms`) in seconds."""
    text = duration.strip()
    if not re.fullmatch(_DURATION, text):
        raise ValueError(f"{duration!r} is not a Prometheus duration")
    return float(sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text)))


def duration(value: float) -> str:
    """Seconds as a Prometheus duration: whole hours, minutes or seconds where exact; 0s for zero."""
    whole = max(0, math.ceil(value - 1e-9))
    if whole == 0:
        return "0s"
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def scrape_seconds(scale: float) -> int:
    """The scrape and evaluation interval at `scale`."""
    return max(MIN_SCRAPE_SECONDS, round(SCRAPE_SECONDS * scale))


def scrape_interval(config: ModelConfig) -> str:
    return duration(scrape_seconds(config.alert_time_scale))


def scaled(text: str, scale: float, floor: float = 0.0) -> str:
    """The duration `text` on a clock `scale` times AWS's, at least `floor` seconds."""
    return duration(max(seconds(text) * scale, floor))


def scale_expression(expr: str, scale: float) -> str:
    """`expr` with its range windows, subquery resolutions and offsets on the clock `scale`."""
    if scale == 1:
        return expr
    window = WINDOW_SCRAPES * scrape_seconds(scale)

    def scaled_range(match: re.Match[str]) -> str:
        span = scaled(match.group(1), scale, window)
        if match.group(0).count(":"):
            step = match.group(2)
            return f"[{span}:{scaled(step, scale, scrape_seconds(scale)) if step else ''}]"
        return f"[{span}]"

    def scaled_offset(match: re.Match[str]) -> str:
        return f"offset {match.group(1)}{scaled(match.group(2), scale)}"

    return _OFFSET.sub(scaled_offset, _RANGE.sub(scaled_range, expr))


def windows(expr: str) -> list[float]:
    """The range windows of a PromQL expression, in seconds."""
    return [seconds(match.group(1)) for match in _RANGE.finditer(expr)]


def rules(scale: float, source: Path = ALERTS_FILE) -> dict[str, Any]:
    """The rule groups of `source` on the clock `scale` (1: as written)."""
    document: dict[str, Any] = yaml.safe_load(source.read_text())
    if scale == 1:
        return document
    for group in document.get("groups") or []:
        if "interval" in group:
            group["interval"] = scaled(group["interval"], scale, scrape_seconds(scale))
        for rule in group.get("rules") or []:
            rule["expr"] = scale_expression(str(rule["expr"]), scale)
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    rule[key] = scaled(rule[key], scale)
    return document


def _string(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


#: YAML with multi-line strings (the rules' expressions) as literal blocks, as alerts.yaml writes them
_BLOCK_DUMPER: Any = type("BlockDumper", (yaml.SafeDumper,), {})
_BLOCK_DUMPER.add_representer(str, _string)


def dump_rules(document: dict[str, Any]) -> str:
    return str(yaml.dump(document, Dumper=_BLOCK_DUMPER, sort_keys=False, width=120))


def rules_text(config: ModelConfig) -> str:
    """`alerts.yaml` as the stage's Prometheus loads it."""
    scale = config.alert_time_scale
    if scale == 1:
        return ALERTS_FILE.read_text()
    header = f"# {ALERTS_FILE.name} on a clock {scale:g} times AWS's (infra/model/alerting.py)\n"
    return header + dump_rules(rules(scale))


def alert_names(source: Path = ALERTS_FILE) -> list[str]:
    return [
        rule["alert"] for group in rules(1, source)["groups"] for rule in group["rules"] if "alert" in rule
    ]

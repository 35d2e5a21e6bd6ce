"""OTLP metric and attribute names as the collector's Prometheus translator (0.102, with its default
`pkg.translator.prometheus.NormalizeName` behaviour and metric suffixes on) makes them Prometheus names.

A metric name is split into words at every character that is not a letter or digit; the unit, turned
into words (`ms` → `milliseconds`, `By` → `bytes`, `1/s` → `per_second`; a `{...}` annotation dropped),
is appended unless already there; a monotonic sum gets `total`, a gauge of unit `1` gets `ratio`; the
words are joined by `_`. So `http.server.duration` (ms) is `http_server_duration_milliseconds` and the
spanmetrics `traces.span.metrics.calls` is `traces_span_metrics_calls_total`. A label name has every
character that is not a letter or digit replaced by `_`, and `key_` put before a leading digit (`key`
before a leading single `_`).
"""

from __future__ import annotations

import re

UNIT_WORDS = {
    # time
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    # bytes
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    # SI
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    # misc
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
PER_UNIT_WORDS = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}
_NOT_WORD = re.compile(r"[^\w]|_", re.UNICODE)
_ANNOTATION = re.compile(r"\{[^}]*\}")


def _words(text: str) -> list[str]:
    return [w for w in _NOT_WORD.split(text) if w]


def _unit_words(unit: str) -> tuple[str, str]:
    """The words for a unit's main part and for its per-part (`By/s` → ("bytes", "per_second"))."""
    main, slash, per = unit.partition("/")
    main = _ANNOTATION.sub("", main).strip()
    main_words = UNIT_WORDS.get(main, main)
    per_words = ""
    if slash:
        per = _ANNOTATION.sub("", per).strip()
        per_words = f"per_{PER_UNIT_WORDS.get(per, per)}" if per else ""
    return "_".join(_words(main_words)), per_words


def metric_name(
    name: str, unit: str, *, monotonic_sum: bool = False, gauge: bool = False, namespace: str = ""
) -> str:
    words = _words(name)
    main, per = _unit_words(unit)
    if main and main not in words:
        words.append(main)
    if per and per not in "_".join(words):
        words += per.split("_")
    if monotonic_sum:
        words = [w for w in words if w != "total"] + ["total"]
    if unit == "1" and gauge:
        words = [w for w in words if w != "ratio"] + ["ratio"]
    if namespace:
        words.insert(0, namespace)
    joined = "_".join(words)
    return f"_{joined}" if joined[:1].isdigit() else joined


def label_name(name: str) -> str:
    if not name:
        return name
    label = re.sub(r"[^\w]", "_", name, flags=re.UNICODE)
    if label[0].isdigit():
        return f"key_{label}"
    if label.startswith("_") and not label.startswith("__"):
        return f"key{label}"
    return label

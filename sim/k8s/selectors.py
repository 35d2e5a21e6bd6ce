"""Label and field selectors, parsed once and matched against objects (dicts as the API returns them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sim.k8s.errors import bad_request

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value in self.values
        if self.op == "!=":
            return not present or value not in self.values
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


class LabelSelector:
    """A parsed label selector (`a=b,c!=d,e in (f,g),h,!i`); the empty selector matches everything."""

    def __init__(self, requirements: list[Requirement]) -> None:
        self.requirements = requirements

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        reqs: list[Requirement] = []
        for part in _split_top(text or ""):
            if "!=" in part:
                key, value = part.split("!=", 1)
                reqs.append(Requirement(key.strip(), "!=", frozenset([value.strip()])))
                continue
            if "=" in part and "(" not in part:
                key, value = part.split("==", 1) if "==" in part else part.split("=", 1)
                reqs.append(Requirement(key.strip(), "=", frozenset([value.strip()])))
                continue
            m = _SET_RE.match(part)
            if not m:
                raise bad_request(f"unable to parse requirement: {part!r}")
            neg, key, op, values = m.groups()
            if op:
                if neg:
                    raise bad_request(f"unable to parse requirement: {part!r}")
                vals = frozenset(v.strip() for v in values.split(",") if v.strip())
                reqs.append(Requirement(key, op, vals))
            else:
                reqs.append(Requirement(key, "!" if neg else "exists"))
        return cls(reqs)

    @classmethod
    def from_dict(cls, selector: dict[str, Any] | None) -> LabelSelector:
        """From a `metav1.LabelSelector` (matchLabels + matchExpressions), as Deployments carry it."""
        reqs: list[Requirement] = []
        if selector:
            for key, value in (selector.get("matchLabels") or {}).items():
                reqs.append(Requirement(key, "=", frozenset([str(value)])))
            ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
            for expr in selector.get("matchExpressions") or []:
                reqs.append(
                    Requirement(expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or []))
                )
        return cls(reqs)

    def matches(self, obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)


def field_value(obj: dict[str, Any], path: str) -> str:
    """The value at a dotted path, as a field selector compares it ("" when absent)."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return ""
        node = node[part]
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


class FieldSelector:
    """A parsed field selector (`metadata.name=x,status.phase!=Running`); any dotted path is accepted."""

    def __init__(self, terms: list[tuple[str, bool, str]]) -> None:
        self.terms = terms  # (path, equal?, value)

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        terms: list[tuple[str, bool, str]] = []
        for part in _split_top(text or ""):
            if "!=" in part:
                path, value = part.split("!=", 1)
                terms.append((path.strip(), False, value.strip()))
            elif "==" in part:
                path, value = part.split("==", 1)
                terms.append((path.strip(), True, value.strip()))
            elif "=" in part:
                path, value = part.split("=", 1)
                terms.append((path.strip(), True, value.strip()))
            else:
                raise bad_request(f"invalid selector: {part!r}; can't understand {part!r}")
        return cls(terms)

    def matches(self, obj: dict[str, Any]) -> bool:
        return all((field_value(obj, path) == value) == equal for path, equal, value in self.terms)

    def __bool__(self) -> bool:
        return bool(self.terms)

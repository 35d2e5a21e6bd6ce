"""The tags every AWS resource of the deploy carries: how facts find them and teardown knows them."""

from __future__ import annotations

PROJECT_TAG = "shopstack:project"


def tags(project: str, name: str, **extra: str) -> dict[str, str]:
    """The tags of a resource `name` of `project`, plus `extra` (such as subnet role tags)."""
    return {PROJECT_TAG: project, "Name": name, **extra}


def tag_list(values: dict[str, str]) -> list[dict[str, str]]:
    """`{"k": "v"}` as the `[{"Key": "k", "Value": "v"}]` most AWS APIs take."""
    return [{"Key": key, "Value": value} for key, value in sorted(values.items())]


def tag_dict(tag_list_value: list[dict[str, str]] | None) -> dict[str, str]:
    """The other way round: `[{"Key": ..., "Value": ...}]` as a dict (missing or empty gives {})."""
    return {tag["Key"]: tag["Value"] for tag in tag_list_value or []}

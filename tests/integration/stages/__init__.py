"""The stages the integration suite runs against; `make_stage` picks one by name."""

from __future__ import annotations

from rich.console import Console

from tests.integration.stages.base import Phases, Stage, StageError


def make_stage(name: str, console: Console, *, keep: bool = False, teardown: bool = False) -> Stage:
    """The stage called `name` (local, aws or kind), not yet started."""
    phases = Phases()
    if name == "local":
        from tests.integration.stages.local import LocalStage

        return LocalStage(console, phases, keep=keep)
    if name == "aws":
        from tests.integration.stages.aws import AwsStage

        return AwsStage(console, phases, keep=keep or not teardown)
    if name == "kind":
        from tests.integration.stages.kind import KindStage

        return KindStage(console, phases, keep=keep)
    raise StageError(f"unknown stage {name!r} (stages: local, aws, kind)")


__all__ = ["Phases", "Stage", "StageError", "make_stage"]

"""The stages the integration suite runs against; `make_stage` picks one by name."""

from __future__ import annotations

from rich.console import Console

from tests.integration.stages.base import Phases, Stage, StageError


def make_stage(
    name: str, console: Console, *, keep: bool = False, teardown: bool = False, deployed: bool = False
) -> Stage:
    """The stage called `name` (local, aws or kind), not yet started; `deployed`: the shop it runs now is
    tested as it is (a running stage: local with `keep`, or aws), neither built nor deployed again."""
    phases = Phases()
    stage: Stage
    if name == "local":
        from tests.integration.stages.local import LocalStage

        stage = LocalStage(console, phases, keep=keep or deployed)
    elif name == "aws":
        from tests.integration.stages.aws import AwsStage

        stage = AwsStage(console, phases, keep=keep or not teardown)
    elif name == "kind":
        from tests.integration.stages.kind import KindStage

        stage = KindStage(console, phases, keep=keep)
    else:
        raise StageError(f"unknown stage {name!r} (stages: local, aws, kind)")
    if deployed and name == "kind":
        raise StageError("--deployed needs a stage that outlives the suite: local or aws")
    stage.deployed = deployed
    return stage


__all__ = ["Phases", "Stage", "StageError", "make_stage"]

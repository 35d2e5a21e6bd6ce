"""Progress for long builds and pushes (rich, on stderr) and the one-line summary (on stdout)."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from containers.derivation import Derivation
from containers.realise import Outcome


class RichReporter:
    """A progress bar over the steps of a build, naming the step that finished last."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, log_path=False)
        self.progress = Progress(
            TextColumn("[bold]{task.fields[phase]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[step]}", style="dim"),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        self.task = self.progress.add_task("steps", total=0, phase="build", step="")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.progress.stop()

    def phase(self, name: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, phase=name)

    def planned(self, count: int) -> None:
        if self.task is not None:
            total = self.progress.tasks[0].total or 0
            self.progress.update(self.task, total=total + count)

    def started(self, derivation: Derivation) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        if self.task is not None:
            self.progress.update(self.task, advance=1, step=f"{outcome.status} {outcome.derivation.name}")
        if outcome.status == "built" and outcome.seconds >= 1.0:
            self.console.log(f"built {outcome.derivation.name} in {outcome.seconds:.1f}s", highlight=False)

    def note(self, message: str) -> None:
        self.console.log(message, highlight=False)


def summary(line: str) -> None:
    print(line, file=sys.stdout, flush=True)

"""How an operation says what it changes, the one way every operation here says it.

An operation reads the current state through facts, collects the commands that the difference needs,
and yields them through `changes`: when there are none, pyinfra is told so (`host.noop`) with what
already holds, which `pyinfra` prints as the operation's "no change" reason.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable

from pyinfra.api.command import FunctionCommand
from pyinfra.context import host


def changes(commands: Iterable[FunctionCommand], already: str) -> Generator[FunctionCommand, None, None]:
    """`commands`, in order; when there are none, a no-op saying `already` (what is already so)."""
    commands = list(commands)
    if not commands:
        host.noop(already)
    yield from commands

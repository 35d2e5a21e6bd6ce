"""How an operation fails: with one line and no traceback.

pyinfra prints a traceback for an exception raised in an operation's generator when it plans at run time
(`-y`), and for one raised in a `FunctionCommand`, but a `FunctionCommand` returning False is a plain
failed operation. So an operation that must stop yields `stop(line)`, and a command function that fails
calls `fail(host, line)` and returns its False.
"""

from __future__ import annotations

import logging

from pyinfra.api.command import FunctionCommand
from pyinfra.api.host import Host
from pyinfra.api.state import State

log = logging.getLogger("pyinfra")


def fail(host: Host, line: str) -> bool:
    """Log `line` as the host's error; False, for the failing command to return."""
    host.log_styled(line, fg="red", log_func=log.error)
    return False


def _stop(state: State, host: Host, line: str) -> bool:
    return fail(host, line)


def stop(line: str) -> FunctionCommand:
    """A command that fails its operation with `line`."""
    return FunctionCommand(_stop, (line,), {})

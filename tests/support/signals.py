"""Children a test stops with Ctrl-C (SIGINT).

A job that a non-interactive shell starts in the background (`.ci/run &`, as a CI runner may) has SIGINT
ignored, and every program it starts inherits that: exec keeps an ignored signal ignored, and Python
installs its KeyboardInterrupt handler only where SIGINT is not ignored. A test that checks what Ctrl-C
does starts its child with `preexec_fn=interruptible`, as a terminal would have started it.
"""

from __future__ import annotations

import signal


def interruptible() -> None:
    """In the child, before exec: SIGINT back to its default action."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

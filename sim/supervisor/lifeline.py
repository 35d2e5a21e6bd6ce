"""Containers die with their kubelet: each container process asks the kernel (Linux `prctl`
PR_SET_PDEATHSIG) for SIGKILL when the process that started it goes, so a node whose process is killed
outright (SIGKILL, OOM, a crash) leaves no pod process behind, as a real node's containers stop with it.

Set in the child between fork and exec: the C function is looked up once, in the parent, so the child
only makes one system call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None


def die_with_parent() -> None:
    """A `preexec_fn`: SIGKILL this process when its parent exits (no-op off Linux)."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

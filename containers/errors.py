"""The one error the builder reports: a message of one line, shown as it is by the command line."""

from __future__ import annotations


class ContainersError(Exception):
    """A build, declaration, store or registry failure explained in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

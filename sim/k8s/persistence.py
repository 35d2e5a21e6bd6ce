"""The store's objects kept across restarts: one JSON snapshot in the data directory.

A snapshot is every object and the resourceVersion counter (`Store.snapshot`); a store made with a data
directory starts from the snapshot there (`Store.restore`). The API server writes it at most every
`FLUSH_SECONDS` while something changed (`Snapshots.flush_every`) and once more when it stops; each write
is atomic (a temporary file, fsync, rename), so a crash leaves the previous snapshot whole.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

SNAPSHOT_NAME = "snapshot.json"
FLUSH_SECONDS = 0.2


class Snapshotted(Protocol):
    """What a snapshot is taken of and restored into (the store)."""

    rv: int

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, snapshot: dict[str, Any]) -> None: ...


class Snapshots:
    """The snapshot file of `store` in `data_dir`."""

    def __init__(self, store: Snapshotted, data_dir: Path) -> None:
        self.store = store
        self.data_dir = data_dir
        self.path = data_dir / SNAPSHOT_NAME
        self.saved_rv = -1  # the resourceVersion the file holds; -1: none written or read yet

    @property
    def dirty(self) -> bool:
        """Whether the store changed since the snapshot was last written or read (every change takes a
        new resourceVersion)."""
        return self.store.rv != self.saved_rv

    def load(self) -> bool:
        """Restore the store from the snapshot, if there is one."""
        if not self.path.exists():
            return False
        self.store.restore(json.loads(self.path.read_text()))
        self.saved_rv = self.store.rv
        return True

    def save(self) -> None:
        """Write the snapshot atomically (temporary file, fsync, rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        rv = self.store.rv
        with tmp.open("w") as fh:
            json.dump(self.store.snapshot(), fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self.saved_rv = rv

    async def flush_every(self, seconds: float = FLUSH_SECONDS) -> None:
        """Write the snapshot when something changed, at most every `seconds` (until cancelled)."""
        while True:
            await asyncio.sleep(seconds)
            if self.dirty:
                try:
                    self.save()
                except OSError:
                    log.exception("could not write the snapshot")

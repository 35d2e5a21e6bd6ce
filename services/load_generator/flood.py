"""The `loadGeneratorFloodHomepage` flag: how many extra home-page requests a user's flood task makes.

Read as the services read their flags (`services.common.flags`: OpenFeature's flagd provider on the file
`FLAGS_FILE` names, reloaded within half a second of a change); without `FLAGS_FILE` it is 0. The
provider is started on first use, so that under Locust it runs on gevent's patched threads.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from services.common.flag_contract import Flag
from services.common.flags import FeatureFlags

DOMAIN = "load-generator"
#: the most extra requests one flood task makes, whatever the flag says (the demo's "on" is 100)
MAX_FLOOD = 1000


class FloodFlag:
    """The flag as the file at `path` sets it (0 without a file), loaded on first use and kept current."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._flags: FeatureFlags | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> FloodFlag:
        value = os.environ.get("FLAGS_FILE", "")
        return cls(Path(value) if value else None)

    def load(self) -> FeatureFlags:
        """Start reading the file (once); raises `FlagsNotReady` naming the file when it is unusable."""
        with self._lock:
            if self._flags is None:
                self._flags = FeatureFlags.from_file(self.path, DOMAIN)
            return self._flags

    def count(self) -> int:
        """The extra home-page requests a flood makes now: the flag's value, whole, 0 to `MAX_FLOOD`."""
        return max(0, min(int(self.load().number(Flag.LOAD_GENERATOR_FLOOD_HOMEPAGE)), MAX_FLOOD))

    def close(self) -> None:
        with self._lock:
            if self._flags is not None:
                self._flags.shutdown()
                self._flags = None

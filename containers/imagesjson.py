"""build/images.json: service name → digest-pinned image reference, the only input the deploy needs.

A build records `shopstack/<name>@sha256:…` (the app image, for the local cloud); a push records
`<registry>/shopstack/<name>@sha256:…` for what it pushed. Entries of images not built or pushed this
time are kept.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from containers.errors import ContainersError

PINNED = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")


class ImagesFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as err:
            raise ContainersError(f"{self.path}: not JSON: {err}") from err
        if not isinstance(data, dict) or not all(
            isinstance(v, str) and PINNED.match(v) for v in data.values()
        ):
            raise ContainersError(f"{self.path}: expected a map of service name to name@sha256:digest")
        return data

    def update(self, references: Mapping[str, str]) -> dict[str, str]:
        merged = {**self.read(), **references}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(dict(sorted(merged.items())), indent=2) + "\n")
        os.replace(partial, self.path)
        return merged

    def digests(self) -> set[str]:
        return {reference.rsplit("@", 1)[1] for reference in self.read().values()}

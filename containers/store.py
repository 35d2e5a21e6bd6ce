"""The content-addressed store: one immutable directory per realised derivation.

`<store>/<key>-<name>/` holds a derivation's output; `<store>/<key>-<name>.json` its record (recipe,
arguments, inputs by store name, output hash), written last, so an output without a record is an
interrupted build and is ignored. Outputs are built in `<store>/.tmp/` and renamed into place, so a
reader never sees half an output and two builders racing on one key both end with the same result.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from containers.errors import ContainersError
from containers.hashing import canonical_json


@dataclass(frozen=True)
class Realisation:
    """A derivation's output in the store and its record."""

    store_name: str
    path: Path
    output_hash: str
    record: dict[str, Any]

    @property
    def inputs(self) -> dict[str, str]:
        """Input name → store name of each input this output was built from."""
        inputs: dict[str, str] = self.record.get("inputs", {})
        return inputs


class Store:
    """A directory of realisations, addressed by derivation key and name."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()

    def ensure(self) -> None:
        (self.root / ".tmp").mkdir(parents=True, exist_ok=True)

    @staticmethod
    def store_name(key: str, name: str) -> str:
        return f"{key}-{name}"

    def path(self, store_name: str) -> Path:
        return self.root / store_name

    def lookup(self, store_name: str) -> Realisation | None:
        record_path = self.root / f"{store_name}.json"
        try:
            record = json.loads(record_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise ContainersError(f"store: unreadable record {record_path}: {err}") from err
        path = self.path(store_name)
        if not path.exists():
            return None
        return Realisation(store_name, path, record["output"], record)

    def add(
        self,
        store_name: str,
        record: dict[str, Any],
        build: Callable[[Path], str],
    ) -> Realisation:
        """Run `build(out)` in a fresh directory, which returns the output hash, then move it into place."""
        self.ensure()
        scratch = Path(tempfile.mkdtemp(prefix=f"{store_name}.", dir=self.root / ".tmp"))
        try:
            out = scratch / "out"
            out.mkdir()
            output_hash = build(out)
            final = self.path(store_name)
            try:
                out.rename(final)
            except OSError:
                if not final.exists():
                    raise
                # Another builder realised the same key first; its output is the same by construction.
            full_record = {**record, "output": output_hash}
            record_tmp = scratch / "record.json"
            record_tmp.write_bytes(canonical_json(full_record))
            os.replace(record_tmp, self.root / f"{store_name}.json")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return Realisation(store_name, self.path(store_name), output_hash, full_record)

    def scratch(self, prefix: str) -> Path:
        """A temporary directory on the store's file system (for checks), removed by the caller."""
        self.ensure()
        return Path(tempfile.mkdtemp(prefix=f"{prefix}.", dir=self.root / ".tmp"))

    def realisations(self) -> Iterator[Realisation]:
        if not self.root.is_dir():
            return
        for record_path in sorted(self.root.glob("*.json")):
            found = self.lookup(record_path.name.removesuffix(".json"))
            if found is not None:
                yield found

    def delete(self, store_name: str) -> int:
        """Remove an output and its record; return the bytes freed."""
        freed = 0
        path = self.path(store_name)
        record_path = self.root / f"{store_name}.json"
        if record_path.exists():
            freed += record_path.stat().st_size
            record_path.unlink()
        if path.is_dir():
            for dirpath, _dirs, files in os.walk(path):
                for name in files:
                    freed += os.lstat(os.path.join(dirpath, name)).st_size
            shutil.rmtree(path)
        elif path.exists():
            freed += path.stat().st_size
            path.unlink()
        return freed

    def orphans(self) -> list[Path]:
        """Outputs without a record (interrupted builds) and leftover scratch directories."""
        if not self.root.is_dir():
            return []
        found = [path for path in (self.root / ".tmp").glob("*")] if (self.root / ".tmp").is_dir() else []
        for path in sorted(self.root.iterdir()):
            if path.is_dir() and path.name != ".tmp" and not (self.root / f"{path.name}.json").exists():
                found.append(path)
        return found

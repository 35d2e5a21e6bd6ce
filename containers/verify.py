"""The store checked against its records, as `nix-store --verify --check-contents` does.

A store path is immutable once built, and every build after trusts it by its name alone, so a path changed
by hand (an edited file, a disk error, a copy cut short) would go into every image built from it. `verify`
hashes each path again and compares with the hash its record took when it was built; `repair` deletes the
paths that differ, with their records, so that the next build makes them again from their recipes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from containers.hashing import tree_hash
from containers.store import Store


@dataclass(frozen=True)
class Corrupt:
    """A store path whose content no longer has the hash recorded when it was built."""

    store_name: str
    recorded: str
    actual: str

    def line(self) -> str:
        return f"corrupt: {self.store_name}: built as {self.recorded[:12]}, now {self.actual[:12]}"


@dataclass
class VerifyReport:
    checked: int = 0
    corrupt: list[Corrupt] = field(default_factory=list)
    repaired: bool = False

    def line(self) -> str:
        if not self.corrupt:
            return f"verified {self.checked} store paths: all as built"
        what = "deleted, the next build makes them again" if self.repaired else "run with --repair to rebuild"
        return f"verified {self.checked} store paths: {len(self.corrupt)} corrupt ({what})"


def verify(
    store: Store, repair: bool = False, progress: Callable[[int, int], None] | None = None
) -> VerifyReport:
    """Hash every store path again; with `repair`, delete the corrupt ones. `progress(done, total)` is
    called after each path."""
    report = VerifyReport(repaired=repair)
    realisations = list(store.realisations())
    for found in realisations:
        actual = tree_hash(found.path)
        if actual != found.output_hash:
            report.corrupt.append(Corrupt(found.store_name, found.output_hash, actual))
            if repair:
                store.delete(found.store_name)
        report.checked += 1
        if progress is not None:
            progress(report.checked, len(realisations))
    return report

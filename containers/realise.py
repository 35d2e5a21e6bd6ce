"""Realising derivations: run each step whose output is not in the store, in dependency order.

Steps run on a small thread pool (fetching and compressing release the GIL). A step is *reused* when the
store already holds its key, *built* otherwise. In check mode (`nix build --check`) every step that is
already in the store is run again in a scratch directory and its output hash compared with the stored
one; fixed-output steps have their stored output re-hashed instead of fetched again.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from containers.derivation import BuildContext, Derivation, FixedOutput
from containers.errors import ContainersError
from containers.hashing import files_hash_of_tree, sha256_file, tree_hash, walk
from containers.store import Realisation, Store

Status = Literal["built", "reused", "checked"]


@dataclass(frozen=True)
class Outcome:
    derivation: Derivation
    realisation: Realisation
    status: Status
    seconds: float


@dataclass(frozen=True)
class Mismatch:
    """A step whose rebuild did not reproduce the stored output."""

    name: str
    stored: str
    rebuilt: str
    first_difference: str


class Reporter(Protocol):
    def planned(self, count: int) -> None: ...
    def started(self, derivation: Derivation) -> None: ...
    def finished(self, outcome: Outcome) -> None: ...


class SilentReporter:
    def planned(self, count: int) -> None:
        pass

    def started(self, derivation: Derivation) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        pass


@dataclass
class Realiser:
    """Realises derivations into one store, remembering every outcome of this run."""

    store: Store
    jobs: int = 4
    check: bool = False
    reporter: Reporter = field(default_factory=SilentReporter)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)

    def realise(self, targets: Iterable[Derivation]) -> list[Realisation]:
        """Realise `targets` and everything they need; return the targets' realisations in order."""
        targets = list(targets)
        nodes: dict[str, Derivation] = {}
        for target in targets:
            for node in target.closure():
                known = nodes.setdefault(node.name, node)
                if known is not node and known.signature() != node.signature():
                    raise ContainersError(f"plan: two different steps are both named {node.name!r}")
        todo = [node for name, node in nodes.items() if name not in self.outcomes]
        self.reporter.planned(len(todo))
        waiting = {
            node.name: {child.name for child in node.inputs.values()} - set(self.outcomes) for node in todo
        }
        with ThreadPoolExecutor(max_workers=max(1, self.jobs), thread_name_prefix="realise") as pool:
            running: dict[Future[Outcome], Derivation] = {}
            while waiting or running:
                for name in [name for name, needs in waiting.items() if not needs]:
                    del waiting[name]
                    node = nodes[name]
                    self.reporter.started(node)
                    running[pool.submit(self._realise_one, node)] = node
                if not running:
                    raise ContainersError("plan: the steps' inputs form a cycle")
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    try:
                        outcome = future.result()
                    except BaseException:
                        for other in running:
                            other.cancel()
                        raise
                    self.outcomes[outcome.derivation.name] = outcome
                    self.reporter.finished(outcome)
                    for needs in waiting.values():
                        needs.discard(outcome.derivation.name)
        return [self.outcomes[target.name].realisation for target in targets]

    def count(self, status: Status) -> int:
        return sum(1 for outcome in self.outcomes.values() if outcome.status == status)

    def _realise_one(self, node: Derivation) -> Outcome:
        started = time.monotonic()
        inputs = {name: self.outcomes[child.name].realisation for name, child in node.inputs.items()}
        key = node.key({name: found.output_hash for name, found in inputs.items()})
        store_name = Store.store_name(key, node.name)
        existing = self.store.lookup(store_name)
        if existing is not None and not self.check:
            return Outcome(node, existing, "reused", time.monotonic() - started)
        if existing is not None:
            self._check(node, existing, inputs)
            return Outcome(node, existing, "checked", time.monotonic() - started)
        record = {
            "name": node.name,
            "recipe": node.recipe.name,
            "args": dict(node.args),
            "inputs": {name: found.store_name for name, found in sorted(inputs.items())},
        }
        realisation = self.store.add(store_name, record, lambda out: self._build(node, out, inputs))
        return Outcome(node, realisation, "built", time.monotonic() - started)

    def _build(self, node: Derivation, out: Path, inputs: dict[str, Realisation]) -> str:
        context = BuildContext(out, node.args, {name: found.path for name, found in inputs.items()})
        try:
            node.recipe.build(context)
        except ContainersError:
            raise
        except Exception as err:
            raise ContainersError(f"step {node.name} failed: {err.__class__.__name__}: {err}") from err
        if node.fixed is not None:
            verify_fixed(node.name, node.fixed, out)
        return tree_hash(out)

    def _check(self, node: Derivation, existing: Realisation, inputs: dict[str, Realisation]) -> None:
        if node.fixed is not None:
            verify_fixed(node.name, node.fixed, existing.path)
            return
        scratch = self.store.scratch(f"check-{node.name}")
        try:
            out = scratch / "out"
            out.mkdir()
            rebuilt = self._build(node, out, inputs)
            if rebuilt != existing.output_hash:
                self.mismatches.append(
                    Mismatch(node.name, existing.output_hash, rebuilt, first_difference(existing.path, out))
                )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def verify_fixed(name: str, fixed: FixedOutput, out: Path) -> None:
    got = sha256_file(out / fixed.path) if fixed.method == "file" else files_hash_of_tree(out)
    if got != fixed.sha256:
        raise ContainersError(f"{name}: fixed-output hash mismatch: expected {fixed.sha256}, got {got}")


def first_difference(left: Path, right: Path) -> str:
    """The first relative path whose kind or content differs between two trees (for check reports)."""

    def entries(root: Path) -> dict[str, str]:
        return {
            relative: (sha256_file(path) if path.is_file() and not path.is_symlink() else str(info.st_mode))
            for relative, path, info in walk(root)
        }

    mine, theirs = entries(left), entries(right)
    for relative in sorted(set(mine) | set(theirs)):
        if mine.get(relative) != theirs.get(relative):
            return relative
    return "(permissions only)"

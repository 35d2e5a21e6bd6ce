"""Derivations: a named build step, its recipe, its inputs, and the store key they hash to.

A derivation's key is the hash of everything that can change its output: its name, its recipe (the
source text of the modules that implement it), its arguments (spec fields, target platform, tool
versions) and the *output hashes* of its input derivations. Keying on the inputs' outputs rather than on
their recipes is what Nix calls content-addressed derivations: when a rebuilt input comes out
byte-identical, nothing downstream runs again (early cut-off).

A fixed-output derivation (a fetched wheel, a copied source tree, the pinned base image's config) is
keyed by its name and the hash its output must have, not by how it is obtained: its output is checked
against that hash, and a mismatch fails the build.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from containers.hashing import canonical_json

KEY_LENGTH = 32


@dataclass(frozen=True)
class BuildContext:
    """What a recipe sees: its arguments, its inputs' store paths, and the empty directory to fill."""

    out: Path
    args: Mapping[str, Any]
    inputs: Mapping[str, Path]


@dataclass(frozen=True)
class Recipe:
    """A build function and the modules (besides its own) whose source text is in every key it produces."""

    name: str
    build: Callable[[BuildContext], None]
    modules: tuple[ModuleType, ...]

    @cached_property
    def identity(self) -> str:
        digest = hashlib.sha256(self.name.encode())
        own = inspect.getmodule(self.build)
        for module in (*((own,) if own is not None else ()), *self.modules):
            digest.update(b"\0" + inspect.getsource(module).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class FixedOutput:
    """The hash a fixed-output derivation's output must have, and how it is taken.

    `file`: the sha256 of the single file `path` in the output; `files`: `files_hash` of the whole output.
    """

    sha256: str
    method: Literal["file", "files"]
    path: str = ""


@dataclass(frozen=True, eq=False)
class Derivation:
    """One build step. Identity within a plan is by `name`, which is unique there."""

    name: str
    recipe: Recipe
    args: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Derivation] = field(default_factory=dict)
    fixed: FixedOutput | None = None

    def key(self, input_outputs: Mapping[str, str]) -> str:
        """The store key, given the output hash of each named input."""
        if self.fixed is not None:
            material: dict[str, Any] = {"name": self.name, "fixed": [self.fixed.method, self.fixed.sha256]}
        else:
            material = {
                "name": self.name,
                "recipe": self.recipe.identity,
                "args": dict(self.args),
                "inputs": {name: input_outputs[name] for name in sorted(self.inputs)},
            }
        return hashlib.sha256(canonical_json(material)).hexdigest()[:KEY_LENGTH]

    def signature(self) -> bytes:
        """What makes two derivations of one name the same step (their inputs compared by name)."""
        return canonical_json(
            {
                "recipe": self.recipe.identity,
                "args": dict(self.args),
                "fixed": None
                if self.fixed is None
                else [self.fixed.method, self.fixed.sha256, self.fixed.path],
                "inputs": {name: child.name for name, child in self.inputs.items()},
            }
        )

    def closure(self) -> Iterator[Derivation]:
        """This derivation and every derivation it depends on, inputs before dependents, each once."""
        seen: set[str] = set()
        order: list[Derivation] = []

        def visit(node: Derivation) -> None:
            if node.name in seen:
                return
            seen.add(node.name)
            for child in node.inputs.values():
                visit(child)
            order.append(node)

        visit(self)
        yield from order

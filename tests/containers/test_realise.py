"""Derivations in the store: keys, reuse, early cut-off, fixed outputs, and --check."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

from containers.derivation import BuildContext, Derivation, FixedOutput, Recipe
from containers.errors import ContainersError
from containers.hashing import sha256_bytes
from containers.realise import Realiser
from containers.store import Store

RUNS: list[str] = []
COUNTER = itertools.count()
MODULE = sys.modules[__name__]


def write_text(context: BuildContext) -> None:
    RUNS.append(str(context.args["text"]))
    (context.out / "value").write_text(str(context.args["text"]).lower())


def concatenate(context: BuildContext) -> None:
    RUNS.append("concatenate")
    text = "".join((context.inputs[name] / "value").read_text() for name in sorted(context.inputs))
    (context.out / "value").write_text(text)


def stamp(context: BuildContext) -> None:
    (context.out / "value").write_text(str(next(COUNTER)))


WRITE = Recipe("write", write_text, ())
CONCAT = Recipe("concatenate", concatenate, ())
STAMP = Recipe("stamp", stamp, ())


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    RUNS.clear()


def graph(text: str) -> Derivation:
    left = Derivation("left", WRITE, {"text": text})
    right = Derivation("right", WRITE, {"text": "B"})
    return Derivation("both", CONCAT, {}, {"a": left, "b": right})


def test_a_step_whose_inputs_did_not_change_is_not_run(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = Realiser(store)
    (built,) = first.realise([graph("A")])
    assert (built.path / "value").read_text() == "ab"
    assert first.count("built") == 3
    assert sorted(RUNS) == ["A", "B", "concatenate"]
    RUNS.clear()
    again = Realiser(store)
    assert again.realise([graph("A")]) == [built]
    assert again.count("reused") == 3
    assert RUNS == []


def test_early_cut_off_an_input_rebuilt_to_the_same_output_stops_the_rebuild(tmp_path: Path) -> None:
    store = Store(tmp_path)
    Realiser(store).realise([graph("A")])
    RUNS.clear()
    realiser = Realiser(store)
    realiser.realise([graph("a")])  # another key for "left", the same output ("a")
    assert RUNS == ["a"]
    assert realiser.outcomes["both"].status == "reused"


def test_a_changed_input_rebuilds_its_dependents_only(tmp_path: Path) -> None:
    store = Store(tmp_path)
    Realiser(store).realise([graph("A")])
    RUNS.clear()
    (built,) = Realiser(store).realise([graph("C")])
    assert sorted(RUNS) == ["C", "concatenate"]
    assert (built.path / "value").read_text() == "cb"


def test_the_recipe_source_is_part_of_the_key() -> None:
    same = Derivation("x", WRITE, {"text": "A"})
    other_recipe = Derivation("x", Recipe("write", write_text, (MODULE,)), {"text": "A"})
    assert same.key({}) != other_recipe.key({})


def test_a_fixed_output_is_checked_against_its_hash(tmp_path: Path) -> None:
    good = Derivation("fixed", WRITE, {"text": "A"}, fixed=FixedOutput(sha256_bytes(b"a"), "file", "value"))
    (found,) = Realiser(Store(tmp_path)).realise([good])
    assert (found.path / "value").read_text() == "a"
    bad = Derivation("bad", WRITE, {"text": "A"}, fixed=FixedOutput(sha256_bytes(b"z"), "file", "value"))
    with pytest.raises(ContainersError, match="bad: fixed-output hash mismatch"):
        Realiser(Store(tmp_path)).realise([bad])
    assert not list(tmp_path.glob("*-bad*"))


def test_check_rebuilds_and_reports_a_step_that_is_not_reproducible(tmp_path: Path) -> None:
    store = Store(tmp_path)
    steady = graph("A")
    unsteady = Derivation("stamp", STAMP)
    Realiser(store).realise([steady, unsteady])
    checker = Realiser(store, check=True)
    checker.realise([graph("A"), Derivation("stamp", STAMP)])
    assert checker.count("checked") == 4
    assert [(m.name, m.first_difference) for m in checker.mismatches] == [("stamp", "value")]


def test_a_failing_step_is_one_line_and_leaves_nothing_in_the_store(tmp_path: Path) -> None:
    def explode(context: BuildContext) -> None:
        (context.out / "half").write_text("x")
        raise OSError("disk on fire")

    with pytest.raises(ContainersError, match=r"^step boom failed: OSError: disk on fire$"):
        Realiser(Store(tmp_path)).realise([Derivation("boom", Recipe("boom", explode, ()))])
    assert [path.name for path in tmp_path.iterdir()] == [".tmp"]
    assert list((tmp_path / ".tmp").iterdir()) == []

"""`python -m containers verify`: a store path changed after it was built is named in one line, and
`--repair` deletes it so that the next build makes it again, into the same image."""

from __future__ import annotations

from containers.store import Store
from tests.containers.conftest import Workspace


def test_a_store_path_changed_by_hand_is_named_and_repair_has_the_next_build_make_it_again(
    workspace: Workspace,
) -> None:
    name = workspace.images[0]
    first = workspace.build().images[name]["app"]
    store = Store(workspace.store)
    clean = workspace.cli("verify", "--store", str(workspace.store))
    assert (clean.returncode, clean.stderr) == (0, ""), clean.stderr
    assert clean.stdout.startswith(
        f"verified {sum(1 for _ in store.realisations())} store paths: all as built"
    )

    victim = next(
        found
        for found in map(store.lookup, first.store_names)
        if found is not None and any(path.is_file() for path in found.path.rglob("*"))
    )
    edited = next(path for path in sorted(victim.path.rglob("*")) if path.is_file())
    content = edited.read_bytes()
    edited.unlink()  # a new file, not the hard link the store clone shares with the session's store
    edited.write_bytes(content + b"\n# edited by hand\n")

    found = workspace.cli("verify", "--store", str(workspace.store))
    assert found.returncode == 1
    assert found.stderr.startswith(f"corrupt: {victim.store_name}: built as {victim.output_hash[:12]}, now ")
    assert len(found.stderr.splitlines()) == 1, found.stderr
    assert "1 corrupt (run with --repair to rebuild)" in found.stdout

    repaired = workspace.cli("verify", "--store", str(workspace.store), "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert "1 corrupt (deleted, the next build makes them again)" in repaired.stdout
    assert store.lookup(victim.store_name) is None

    again = workspace.build()
    assert again.built >= 1
    assert again.images[name]["app"].manifest == first.manifest, "the rebuilt image differs from the first"
    assert workspace.cli("verify", "--store", str(workspace.store)).returncode == 0

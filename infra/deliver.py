"""`python -m infra.deliver STEP`: the steps of delivery, one command each, the same by hand, in CI and in
GitHub Actions (`.github/workflows/deliver.yml` and `drift.yml` call nothing else).

    python -m infra.deliver build                         # the images; which differ from the last deploy's
    python -m infra.deliver deploy                        # the deploy of build/images.json
    python -m infra.deliver deploy --images DIR/images.json   # ... of an earlier build's digests, unbuilt
    python -m infra.deliver verify [-m smoke] [PYTEST ARGS]   # the integration suite against the shop
    python -m infra.deliver drift                         # exit 1 naming what differs from the declaration
    python -m infra.deliver all [PYTEST ARGS]             # build, deploy, verify

The target is one variable, SHOPSTACK_INVENTORY: `local` (the default: the everyday local cloud, started
if it does not run), `aws` or `kind`. For `aws`, SHOPSTACK_ENVIRONMENT (`staging`, `production`) picks
`inventory/environments/<env>.toml`, which becomes the deploy's settings file (SHOPSTACK_SETTINGS).

Each step is the project's own command: `python -m containers build`; `pyinfra -y inventory/<inventory>.py
deploy.py` (`--dry --json` for drift, `fact infra.aws.record.LatestRecord` for the last deploy's images);
`./tox -e <inventory> -- --deployed ARGS`, so that the suite tests the shop the deploy step left,
building and deploying nothing (locally, the cloud the deploy went to). Their output goes to
`.stage/deliver/<step>.log` ($SHOPSTACK_STAGE_LOGS), shown on a terminal's status line as it comes and
printed in full elsewhere (a CI log). A failure ends the run with one line. Exit status: 0 done, 1 a step
failed or drift was found, 2 the target or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from containers.errors import ContainersError
from containers.imagesjson import ImagesFile

REPO = Path(__file__).resolve().parents[1]
INVENTORIES = ("local", "aws", "kind")
ENVIRONMENTS = REPO / "inventory" / "environments"
BUILD_DIR = REPO / "build"
PYINFRA = Path(sys.executable).with_name("pyinfra")
#: the operations of deploy.py (by its names for them) that act on every run without changing what is
#: declared: the lock taken and released and the run's record (the rollout wait is conditional, never a
#: planned change)
BOOKKEEPING = frozenset({"Take the deploy lock", "Deploy record", "Release the deploy lock"})
LATEST_RECORD = "infra.aws.record.LatestRecord"
TIMEOUTS = {"build": 1800.0, "record": 900.0, "deploy": 5400.0, "verify": 10800.0, "drift": 1800.0}
#: the lines of a failed step's log shown where its output was not already printed
TAIL_LINES = 30


class DeliverError(Exception):
    """Why delivery stops, in one line; `status` is the exit status (1 a step failed, 2 a usage error)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------- target


@dataclass(frozen=True)
class Target:
    """Where the steps deliver to: an inventory, and for aws the environment's settings file."""

    inventory: str
    environment: str | None = None

    @property
    def inventory_file(self) -> Path:
        return REPO / "inventory" / f"{self.inventory}.py"

    @property
    def settings_file(self) -> Path | None:
        return None if self.environment is None else ENVIRONMENTS / f"{self.environment}.toml"

    @property
    def name(self) -> str:
        return self.inventory if self.environment is None else f"{self.inventory} {self.environment}"

    def env(self) -> dict[str, str]:
        """The variables every step runs with: this process's, and the environment's settings file."""
        settings = self.settings_file
        return {**os.environ, **({"SHOPSTACK_SETTINGS": str(settings)} if settings else {})}


def environments() -> list[str]:
    return sorted(path.stem for path in ENVIRONMENTS.glob("*.toml"))


def target_from(env: Mapping[str, str]) -> Target:
    """The target SHOPSTACK_INVENTORY and SHOPSTACK_ENVIRONMENT name; `DeliverError` when they do not."""
    inventory = env.get("SHOPSTACK_INVENTORY") or "local"
    if inventory not in INVENTORIES:
        raise DeliverError(f"SHOPSTACK_INVENTORY={inventory}: it is one of {', '.join(INVENTORIES)}", 2)
    if inventory != "aws":
        return Target(inventory)
    environment = env.get("SHOPSTACK_ENVIRONMENT") or ""
    if environment not in environments():
        raise DeliverError(
            f"SHOPSTACK_INVENTORY=aws needs SHOPSTACK_ENVIRONMENT, one of {', '.join(environments())} "
            f"(inventory/environments/<env>.toml), not {environment!r}",
            2,
        )
    if env.get("SHOPSTACK_SETTINGS"):
        raise DeliverError(
            f"SHOPSTACK_SETTINGS is set, but SHOPSTACK_ENVIRONMENT={environment} already picks the settings "
            f"(inventory/environments/{environment}.toml): unset one",
            2,
        )
    return Target("aws", environment)


# ---------------------------------------------------------------------------------------------- steps


class Steps:
    """Runs the steps' commands from the repository, each one's output in `<logs>/<step>.log`: on a
    terminal its latest line is the status line, elsewhere (CI) every line is printed as it comes."""

    def __init__(self, console: Console, target: Target, logs: Path) -> None:
        self.console = console
        self.target = target
        self.logs = logs

    def run(self, step: str, what: str, argv: Sequence[str | Path], *, capture: bool = False) -> str:
        """Run `argv` as step `step` (`what` says what it does); its stdout when `capture` (then only
        its stderr is shown and logged). `DeliverError` naming the command when it fails."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{step}.log"
        command = " ".join(str(a).replace(f"{REPO}/", "") for a in argv)
        started = time.monotonic()
        with contextlib.ExitStack() as files:
            output = files.enter_context(log.open("w"))
            output.write(f"$ {command}\n")
            # a captured stdout (pyinfra's JSON, which can be large) goes to a file beside the log
            stdout = files.enter_context((self.logs / f"{step}.json").open("w+")) if capture else None
            process = subprocess.Popen(
                [str(a) for a in argv],
                cwd=REPO,
                env=self.target.env(),
                stdin=subprocess.DEVNULL,
                stdout=stdout or subprocess.PIPE,
                stderr=subprocess.PIPE if capture else subprocess.STDOUT,
                text=True,
                errors="replace",
            )
            lines = process.stderr if capture else process.stdout
            assert lines is not None
            status = self._follow(step, what, process, lines, output)
            captured = ""
            if stdout is not None:
                stdout.seek(0)
                captured = stdout.read()
        if status != 0:
            if self.console.is_terminal:
                tail = log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
                self.console.print("\n".join(tail), markup=False, style="dim")
            raise DeliverError(f"{step} failed: `{command}` exited {status} (its output: {self._shown(log)})")
        seconds = time.monotonic() - started
        self.console.print(f"[green]✓[/green] {step}: {what} ({seconds:.1f} s; log {self._shown(log)})")
        return captured

    def _follow(
        self, step: str, what: str, process: subprocess.Popen[str], lines: IO[str], output: IO[str]
    ) -> int:
        """Copy the process's lines to the log and the console until it ends; its exit status. A step
        that outlives its timeout is stopped (SIGTERM, which tox and pytest turn into a clean stop)."""
        expired = threading.Event()

        def stop() -> None:
            expired.set()
            process.terminate()

        timer = threading.Timer(TIMEOUTS[step], stop)
        timer.daemon = True
        timer.start()
        try:
            if self.console.is_terminal:
                with self.console.status(f"{step}: {what}") as status:
                    for line in lines:
                        output.write(line)
                        if line.strip():
                            status.update(f"{step}: {what} [dim]· {_escape(line.strip()[:100])}[/dim]")
            else:
                self.console.rule(f"{step}: {what}", style="dim")
                for line in lines:
                    output.write(line)
                    sys.stdout.write(line)
                sys.stdout.flush()
            status_code = process.wait()
        except KeyboardInterrupt:
            process.wait()  # it had the same interrupt: it stops as it does (a deploy releases its lock)
            raise
        except BaseException:
            process.terminate()
            process.wait()
            raise
        finally:
            timer.cancel()
        if expired.is_set():
            raise DeliverError(f"{step} did not finish within {TIMEOUTS[step]:.0f} s: stopped")
        return status_code

    def _shown(self, path: Path) -> str:
        return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


# ---------------------------------------------------------------------------------------------- delivery


class Delivery:
    """The steps against one target."""

    def __init__(self, console: Console, target: Target, logs: Path) -> None:
        self.console = console
        self.target = target
        self.steps = Steps(console, target, logs)

    def _pyinfra(self, *args: str) -> list[str]:
        """`pyinfra INVENTORY ARGS` for the target."""
        return [str(PYINFRA), str(self.target.inventory_file), *args]

    def build(self) -> dict[str, str]:
        """`python -m containers build`, then which images differ from those of the target's last deploy
        (only those roll out: the deploy changes what differs). The images by service."""
        argv = [sys.executable, "-m", "containers", "build", "--out", str(BUILD_DIR)]
        self.steps.run("build", "the images (nothing whose inputs did not change is built again)", argv)
        built = read_images(BUILD_DIR / "images.json")
        record = self.latest_record()
        self.console.print(images_table(built, record))
        return built

    def latest_record(self) -> dict[str, Any] | None:
        """The target's last deploy record (`pyinfra INVENTORY fact infra.aws.record.LatestRecord`)."""
        argv = self._pyinfra("fact", LATEST_RECORD, "--json", "-y")
        output = self.steps.run(
            "record", f"the last deploy's record in {self.target.name}", argv, capture=True
        )
        try:
            facts = json.loads(output[output.index("{") :])
            [record] = facts[LATEST_RECORD].values()
        except (ValueError, KeyError) as err:
            raise DeliverError(
                f"pyinfra's answer for {LATEST_RECORD} is not one host's JSON: {err}"
            ) from None
        return record  # type: ignore[no-any-return]

    def deploy(self, images: Path | None = None) -> None:
        """`pyinfra -y INVENTORY deploy.py`; with `images` (an earlier build's images.json) exactly those
        digests, from the layouts beside it, with nothing built."""
        argv = self._pyinfra(str(REPO / "deploy.py"), "-y")
        what = f"deploy to {self.target.name}"
        if images is not None:
            promoted = read_images(images, expected=True)
            argv += ["--data", f"build_dir={images.resolve().parent}"]
            what += f", promoting the {len(promoted)} images of {images}"
        self.steps.run("deploy", what, argv)

    def verify(self, pytest_args: Sequence[str]) -> None:
        """The integration suite against the deployed shop: `./tox -e INVENTORY -- --deployed ARGS` (the
        suite builds and deploys nothing: it tests exactly what the deploy step released, and locally uses
        the running cloud and leaves it running). `./tox` runs on this interpreter, the one its environments
        were made from, so it keeps its own environment."""
        argv = [
            sys.executable,
            str(REPO / "tox"),
            "-e",
            self.target.inventory,
            "--",
            "--deployed",
            *pytest_args,
        ]
        subset = " ".join(pytest_args) or "the full suite"
        self.steps.run("verify", f"the integration suite ({subset}) against {self.target.name}", argv)

    def drift(self) -> list[str]:
        """The deploy's operations that would change something now (`--dry --json`), bookkeeping left
        out: every resource that differs from the declaration, by the deploy's name for it.

        The declaration's images are those the target runs: its last deploy record's (a scheduled check
        has no build, and a newer build is a release, not drift); before any deploy, the local build's."""
        deployed = deployed_images(self.latest_record())
        if not deployed and not (BUILD_DIR / "images.json").is_file():
            raise DeliverError(
                f"nothing was deployed to {self.target.name} yet and there is no build to plan from: "
                "run `python -m infra.deliver build` first"
            )
        with tempfile.TemporaryDirectory(prefix="drift-") as build:
            argv = self._pyinfra(str(REPO / "deploy.py"), "--dry", "--json")  # no -y: skips change detection
            if deployed:
                ImagesFile(Path(build) / "images.json").update(deployed)
                argv += ["--data", f"build_dir={build}"]
            output = self.steps.run("drift", f"the plan against {self.target.name}", argv, capture=True)
        try:
            plan = json.loads(output[output.index("{") :])["plan"]
        except (ValueError, KeyError) as err:
            raise DeliverError(f"pyinfra's --dry --json printed no plan: {err}") from None
        return [op["name"] for op in plan if op["hosts_with_change"] and op["name"] not in BOOKKEEPING]


def deployed_images(record: Mapping[str, Any] | None) -> dict[str, str]:
    """The images (service -> name@sha256:digest) a deploy record names; {} when it names none."""
    images = (record or {}).get("images") or {}
    if "error" in images:
        return {}
    return {service: str(reference) for service, reference in images.items()}


def read_images(path: Path, expected: bool = False) -> dict[str, str]:
    """An images.json (service -> name@sha256:digest); `DeliverError` when it is bad, or missing and
    `expected`."""
    if expected and (path.name != "images.json" or not path.is_file()):
        raise DeliverError(f"--images {path}: not a build's images.json (its layouts beside it, in oci/)", 2)
    try:
        return ImagesFile(path).read()
    except ContainersError as err:
        raise DeliverError(str(err), 2) from None


def images_table(built: Mapping[str, str], record: Mapping[str, Any] | None) -> Table:
    """Each image of the build: changed, new or unchanged since the deploy of `record`."""
    deployed = deployed_images(record)
    changed = sorted(s for s in built if _digest(deployed.get(s)) != _digest(built[s]))
    if record is None:
        title = f"no deploy yet: all {len(built)} images are new"
    else:
        commit = str((record.get("git") or {}).get("commit", "unknown"))[:12]
        title = (
            f"{len(changed)} of {len(built)} images differ from those of the last deploy "
            f"({record.get('when', '?')}, {record.get('who', '?')}, commit {commit}); only they roll out"
        )
    table = Table(title=title, title_justify="left", show_edge=False)
    for column in ("image", "digest", "since the last deploy"):
        table.add_column(column)
    for service, reference in sorted(built.items()):
        before = _digest(deployed.get(service))
        if before is None:
            state = "[yellow]new[/yellow]"
        elif service in changed:
            state = f"[yellow]changed[/yellow] (was {before[:19]})"
        else:
            state = "[dim]unchanged[/dim]"
        table.add_row(service, str(_digest(reference))[:19], state)
    return table


def _digest(reference: str | None) -> str | None:
    """`sha256:...` of `name@sha256:...` (None for None)."""
    return None if reference is None else reference.rsplit("@", 1)[-1]


# ---------------------------------------------------------------------------------------------- command


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra.deliver",
        description="The steps of delivery against $SHOPSTACK_INVENTORY (local, aws, kind; for aws also "
        "$SHOPSTACK_ENVIRONMENT: staging, production).",
    )
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    steps.add_parser("build", help="build the images; say which differ from the last deploy's")
    deploy = steps.add_parser("deploy", help="deploy build/images.json, or the build --images names")
    deploy.add_argument(
        "--images", type=Path, metavar="DIR/images.json", help="an earlier build's images.json to promote"
    )
    steps.add_parser(
        "verify", help="the integration suite against the deployed shop (pytest arguments after)"
    )
    steps.add_parser("drift", help="exit 1 naming every resource that differs from the declaration")
    steps.add_parser("all", help="build, deploy and verify (pytest arguments after)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, pytest_args = parser().parse_known_args(argv)
    if pytest_args and args.step not in ("verify", "all"):
        parser().error(f"unrecognised arguments: {' '.join(pytest_args)}")
    console = Console(highlight=False, soft_wrap=True)
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        target = target_from(os.environ)
        logs = Path(os.environ.get("SHOPSTACK_STAGE_LOGS", REPO / ".stage")) / "deliver"
        delivery = Delivery(console, target, logs)
        console.print(f"[bold]deliver {args.step}[/bold] to {target.name}")
        if args.step in ("build", "all"):
            delivery.build()
        if args.step in ("deploy", "all"):
            delivery.deploy(getattr(args, "images", None))
        if args.step in ("verify", "all"):
            delivery.verify(pytest_args)
        if args.step == "drift":
            differing = delivery.drift()
            if differing:
                errors.print(
                    f"[red]✗[/red] drift in {target.name}: {len(differing)} resources differ from the "
                    f"declaration: {'; '.join(differing)}"
                )
                return 1
            console.print(f"[green]✓[/green] no drift: {target.name} is as declared")
    except DeliverError as err:
        errors.print(f"[red]✗[/red] deliver {args.step}: {_escape(str(err))}")
        return err.status
    except KeyboardInterrupt:
        errors.print(f"[red]✗[/red] deliver {args.step}: interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Blue-green releases: which services a deploy releases, and the steps between its three applies.

`plan_releases` reads the cluster (the stable Service says which colour is live; each colour's
Deployment and ConfigMap say what it runs) and, for every blue-green service whose desired run (image and
configuration) differs from the live colour's, plans a move to the idle colour. The deploy then renders
the model three times and applies each in turn:

1. staged: each moving service's idle colour comes up with the new run and as many replicas as the live
   one; traffic is unchanged. The rollout wait that follows waits for every new pod to be Ready, which
   behind the ALB includes its target being healthy in its target group (the readiness gate);
2. after `smoke_checks` (each new colour answers /readyz and its smoke path, through the API server's
   service proxy, before any user request reaches it), switched: the stable Services, the ALB's weights
   and the HPAs go to the new colours;
3. after `drain` (the old colours keep serving what they hold for the target groups' deregistration
   delay), final: the old colours go to zero replicas, their Deployments keeping the new run, so the idle
   colour is always ready to take the next release.

A service with nothing to release renders the same in all three, so a deploy with the same images changes
nothing. A failed wait or smoke check stops the deploy before the switch: the old colour keeps the traffic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field

from pyinfra.api.command import FunctionCommand
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State

from infra.changes import changes
from infra.cloud import cloud_of
from infra.k8s.access import service_get
from infra.k8s.apply import DescribedCommand
from infra.k8s.facts import Obj, object_key
from infra.model import SERVICES, ModelConfig
from infra.model.release import COLOUR_LABEL, Colour, Release, Run, coloured, config_map_name, other
from infra.model.services import HTTP_PORT, row
from infra.model.workloads import desired_run

log = logging.getLogger("pyinfra")

SMOKE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Move:
    """One service's release: from the `old` colour (None: the service's rolling Deployment, when a
    rolling service becomes blue-green) to the `new` one, which runs `run`."""

    service: str
    old: Colour | None
    new: Colour
    run: Run

    @property
    def old_name(self) -> str:
        """The Deployment that served before the move."""
        return self.service if self.old is None else coloured(self.service, self.old)


@dataclass(frozen=True)
class ReleasePlan:
    """The model's `releases` for each of the three applies, and the moves between them.

    `current` renders every blue-green service as it runs now (no move): what ad-hoc operations use."""

    current: Mapping[str, Release] = field(default_factory=dict)
    staged: Mapping[str, Release] = field(default_factory=dict)
    switched: Mapping[str, Release] = field(default_factory=dict)
    final: Mapping[str, Release] = field(default_factory=dict)
    moves: tuple[Move, ...] = ()

    def live(self, service: str) -> Colour | None:
        """The colour of `service` that takes traffic now; None for a rolling service."""
        release = self.current.get(service)
        return release.live if release is not None else None


def _live_run(deployment: Obj | None, config_map: Obj | None) -> Run | None:
    """What a colour's Deployment runs: its image, and the environment of its ConfigMap."""
    if deployment is None:
        return None
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return Run(image, dict((config_map or {}).get("data") or {}))


@dataclass(frozen=True)
class Colours:
    """One blue-green service as it runs now: its live colour and what each colour's Deployment runs."""

    live: Colour
    runs: Mapping[Colour, Run]
    replicas: Mapping[Colour, int]

    @property
    def idle(self) -> Colour:
        return other(self.live)

    def current(self) -> Release:
        return Release(live=self.live, runs=self.runs)

    def move(self, service: str, run: Run) -> tuple[tuple[Release, Release, Release], Move]:
        """The staged, switched and final releases that move `service` to its idle colour running `run`.
        The old colour keeps its run at zero replicas afterwards: a rollback brings it back."""
        old, new = self.live, self.idle
        count = self.replicas.get(old, 1)
        keep = {old: self.runs[old], new: run}
        phases = (
            Release(live=old, runs=keep, replicas={new: count}),
            Release(live=new, runs=keep, replicas={old: count, new: count}),
            Release(live=new, runs=keep),
        )
        return phases, Move(service, old, new, run)


def live_colours(config: ModelConfig, live: Mapping[str, Obj]) -> dict[str, Colours]:
    """Each blue-green service's colours as the cluster's live Services and Deployments
    (`infra.k8s.facts.LiveObjects`, keyed by `object_key`) say; absent before its first deploy."""
    found = {}
    for service_row in SERVICES:
        name = service_row.name
        if config.strategy(name) != "blue-green":
            continue
        stable = live.get(object_key(_ref("v1", "Service", config.namespace, name)))
        selected = ((stable or {}).get("spec") or {}).get("selector") or {}
        colour: Colour = "green" if selected.get(COLOUR_LABEL) == "green" else "blue"
        deployments = {
            c: live.get(object_key(_ref("apps/v1", "Deployment", config.namespace, coloured(name, c))))
            for c in (colour, other(colour))
        }
        config_maps = {
            c: live.get(object_key(_ref("v1", "ConfigMap", config.namespace, config_map_name(name, c))))
            for c in deployments
        }
        runs = {c: run for c, d in deployments.items() if (run := _live_run(d, config_maps[c])) is not None}
        if colour not in runs:
            continue  # not deployed yet: rendered as the model's defaults
        replicas = {c: int(d["spec"].get("replicas", 1)) for c, d in deployments.items() if d is not None}
        found[name] = Colours(colour, runs, replicas)
    return found


def plan_releases(
    config: ModelConfig, live: Mapping[str, Obj], pinned: Mapping[str, str] | None = None
) -> ReleasePlan:
    """What to release, from the desired `config` (without releases) and the cluster's live Services and
    Deployments. A service whose desired image is `pinned` (rolled back from) is not released again."""
    plan: dict[str, dict[str, Release]] = {"current": {}, "staged": {}, "switched": {}, "final": {}}
    moves = []
    for name, colours in live_colours(config, live).items():
        wanted = desired_run(config, row(name), config.images[name])
        current = colours.current()
        plan["current"][name] = current
        rolled_back = (pinned or {}).get(name) == wanted.image
        if colours.runs[colours.live] == wanted or rolled_back:
            plan["staged"][name] = plan["switched"][name] = plan["final"][name] = current
            continue
        (staged, switched, final), move = colours.move(name, wanted)
        plan["staged"][name], plan["switched"][name], plan["final"][name] = staged, switched, final
        moves.append(move)
    for name in becoming_blue_green(config, live, plan["current"]):
        # its live colour comes up beside the rolling pods, both selected, and takes over at the switch;
        # the prune then removes the rolling Deployment
        plan["current"][name] = plan["staged"][name] = Release(every_colour=True)
        plan["switched"][name] = plan["final"][name] = Release()
        moves.append(Move(name, None, Release().live, desired_run(config, row(name), config.images[name])))
    return ReleasePlan(**plan, moves=tuple(moves))


def becoming_blue_green(
    config: ModelConfig, live: Mapping[str, Obj], coloured: Mapping[str, Release]
) -> list[str]:
    """The blue-green services that run as a rolling Deployment now, with no colour deployed."""
    return [
        name
        for name in (service_row.name for service_row in SERVICES)
        if config.strategy(name) == "blue-green"
        and name not in coloured
        and object_key(_ref("apps/v1", "Deployment", config.namespace, name)) in live
    ]


def plan_rollback(config: ModelConfig, live: Mapping[str, Obj], service: str) -> ReleasePlan:
    """The release that brings `service` back to what its idle colour ran (the previous release)."""
    colours = live_colours(config, live).get(service)
    if colours is None:
        raise ValueError(f"{service} is not a deployed blue-green service: nothing to roll back")
    previous = colours.runs.get(colours.idle)
    if previous is None or previous == colours.runs[colours.live]:
        raise ValueError(f"{service} has no previous release to roll back to (its idle colour runs the same)")
    (staged, switched, final), move = colours.move(service, previous)
    return ReleasePlan(
        current={service: colours.current()},
        staged={service: staged},
        switched={service: switched},
        final={service: final},
        moves=(move,),
    )


def _ref(api_version: str, kind: str, namespace: str, name: str) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"namespace": namespace, "name": name}}


def release_kinds() -> list[list[str]]:
    """The kinds `plan_releases` reads."""
    return [["apps/v1", "Deployment"], ["v1", "Service"], ["v1", "ConfigMap"]]


# ---------------------------------------------------------------------------------------- smoke checks


def _smoke(state: State, host: Host, move: Move, paths: tuple[str, ...]) -> bool | None:
    cloud = cloud_of(host)
    target = coloured(move.service, move.new)
    for path in paths:
        try:
            answer = service_get(
                cloud, cloud.settings.namespace, target, HTTP_PORT, path, SMOKE_TIMEOUT_SECONDS
            )
        except OSError as err:
            reason = f"{type(err).__name__}: {err}"
        else:
            if 200 <= answer.status_code < 300:
                continue
            reason = f"{answer.status_code} {answer.text[:200].strip()}"
        host.log_styled(
            f"{move.service}: the new colour {move.new} failed its smoke check GET {path}: {reason}; "
            f"it takes no traffic, {move.old_name} keeps serving",
            fg="red",
            log_func=log.error,
        )
        return False
    return None


@operation(is_idempotent=False)
def smoke_checks(moves: tuple[Move, ...]) -> Generator[FunctionCommand, None, None]:
    """Each new colour answers /readyz and its service's smoke path with a 2xx, through the API server's
    service proxy to its own Service, before it takes any traffic."""
    commands = []
    for move in moves:
        paths = tuple(dict.fromkeys(("/readyz", row(move.service).smoke_path)))
        description = f"smoke-check {coloured(move.service, move.new)}: GET {', '.join(paths)}"
        commands.append(DescribedCommand(description, _smoke, (move, paths)))
    yield from changes(commands, "no new colour to check")


def _wait(state: State, host: Host, seconds: float) -> None:
    time.sleep(seconds)


@operation(is_idempotent=False)
def drain(moves: tuple[Move, ...], seconds: float) -> Generator[FunctionCommand, None, None]:
    """After a switch, the old colours keep serving what they hold for `seconds` (the target groups'
    deregistration delay) before they go to zero."""
    commands = []
    if moves:
        old = ", ".join(move.old_name for move in moves)
        commands.append(DescribedCommand(f"let {old} drain for {seconds:g} s", _wait, (seconds,)))
    yield from changes(commands, "no old colour to drain")

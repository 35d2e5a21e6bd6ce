"""Blue-green releases as model inputs: which colour of a service takes traffic and what each colour runs.

A blue-green service has two Deployments and two Services, `<service>-blue` and `<service>-green`, and
its stable Service `<service>` (what its callers use) selects the live colour's pods; for the ALB-facing
service the Ingress forwards to the colours' Services with weights 100 and 0, as the AWS Load Balancer
Controller's weighted forward action does. A release brings the idle colour up with the new run, checks
it, then moves the stable Service, the ALB's weights and the HPA to it; the old colour keeps serving what
it holds for the target groups' deregistration delay, then goes to zero replicas.

The model is pure: the deploy reads the cluster and says, per service, which colour is live, what each
colour runs and how many replicas a colour holds where that differs from the defaults (`Release`). With no
`Release` a service renders steady: blue live with the service's replicas, green idle at zero, both
running the desired image and configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

Colour = Literal["blue", "green"]
Strategy = Literal["blue-green", "rolling"]
COLOURS: Final[tuple[Colour, Colour]] = ("blue", "green")
STRATEGIES: Final[tuple[Strategy, Strategy]] = ("blue-green", "rolling")
COLOUR_LABEL = "shopstack.io/colour"


def other(colour: Colour) -> Colour:
    return "green" if colour == "blue" else "blue"


def coloured(service: str, colour: Colour) -> str:
    """The name of a colour's Deployment and Service."""
    return f"{service}-{colour}"


def config_map_name(service: str, colour: Colour | None = None) -> str:
    """The name of the ConfigMap with the environment of a colour's pods (of a rolling service's pods)."""
    return f"{coloured(service, colour) if colour else service}-config"


@dataclass(frozen=True)
class Run:
    """What a colour's pods run: the image and the service's environment (the colour's own ConfigMap, so
    that a pod the live colour starts later, scaled up or replaced, gets the live colour's environment and
    never the one a release is bringing up, or one that failed)."""

    image: str
    env: Mapping[str, str]


@dataclass(frozen=True)
class Release:
    """One blue-green service as the deploy wants it rendered.

    `runs` holds what a colour runs where that is not the desired run (the old colour, while a release is
    under way); `replicas` holds a colour's count where it is not the default (the live colour: the
    service's count, its HPA's from then on; the idle colour: zero).
    """

    live: Colour = "blue"
    runs: Mapping[Colour, Run] = field(default_factory=dict)
    replicas: Mapping[Colour, int] = field(default_factory=dict)
    #: the stable Service selects every pod of the service, of either colour or none: while a rolling
    #: service becomes blue-green, its rolling pods serve until the live colour is up and takes over
    every_colour: bool = False

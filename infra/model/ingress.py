"""The `alb` IngressClass and Ingress: an internet-facing ALB, IP targets (frontend-proxy's pods),
HTTP 80, health-checked on /healthz, targets drained for the deploy's deregistration delay. The AWS Load
Balancer Controller reads it in AWS; the local ALB controller (`sim/alb`) reads the same annotations, so
one Ingress serves both stages.
"""

from __future__ import annotations

import json

from infra.model import common
from infra.model.common import Obj
from infra.model.config import ModelConfig
from infra.model.release import COLOURS, Release, coloured
from infra.model.services import ALB_BACKEND, HTTP_PORT

CLASS = "alb"
CONTROLLER = "ingress.k8s.aws/alb"
PREFIX = "alb.ingress.kubernetes.io/"
#: the action that answers 404 at the ALB itself, for the paths below
NOT_FOUND = "not-found"
INTERNAL_PATHS = ("/drain",)


def ingress_class(config: ModelConfig) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": common.metadata(config, CLASS, "ingress", namespace=None),
        "spec": {"controller": CONTROLLER},
    }


def ingress(config: ModelConfig) -> Obj:
    """The shop's Ingress. A blue-green frontend-proxy is reached through the load balancer controller's
    weighted forward action to its colours' Services (the live colour 100, the idle 0), each its own
    target group, so a switch moves the weights and no target's registration; a rolling one directly."""
    annotations = {
        PREFIX + "scheme": "internet-facing",
        PREFIX + "target-type": "ip",
        # readiness, not liveness: a pod draining before it stops turns unready, and the ALB stops sending
        PREFIX + "healthcheck-path": "/readyz",
        PREFIX + "listen-ports": json.dumps([{"HTTP": 80}]),
        PREFIX + "target-group-attributes": (
            f"deregistration_delay.timeout_seconds={config.deregistration_delay_seconds}"
        ),
    }
    backend: Obj = {"service": {"name": ALB_BACKEND, "port": {"number": HTTP_PORT}}}
    if config.strategy(ALB_BACKEND) == "blue-green":
        live = config.releases.get(ALB_BACKEND, Release()).live
        weights = [
            {
                "serviceName": coloured(ALB_BACKEND, colour),
                "servicePort": str(HTTP_PORT),
                "weight": 100 if colour == live else 0,
            }
            for colour in COLOURS
        ]
        action = {"type": "forward", "forwardConfig": {"targetGroups": weights}}
        annotations[PREFIX + f"actions.{ALB_BACKEND}"] = json.dumps(action, sort_keys=True)
        backend = {"service": {"name": ALB_BACKEND, "port": {"name": "use-annotation"}}}
    # the services' own endpoints are for the kubelet (a preStop hook), not for the internet
    annotations[PREFIX + f"actions.{NOT_FOUND}"] = json.dumps(
        {
            "type": "fixed-response",
            "fixedResponseConfig": {
                "contentType": "application/json",
                "statusCode": "404",
                "messageBody": '{"error": "not found"}',
            },
        },
        sort_keys=True,
    )
    blocked = {"service": {"name": NOT_FOUND, "port": {"name": "use-annotation"}}}
    paths = [{"path": path, "pathType": "Exact", "backend": blocked} for path in INTERNAL_PATHS]
    paths.append({"path": "/", "pathType": "Prefix", "backend": backend})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": common.metadata(config, config.project, "ingress", annotations=annotations),
        "spec": {"ingressClassName": CLASS, "rules": [{"http": {"paths": paths}}]},
    }

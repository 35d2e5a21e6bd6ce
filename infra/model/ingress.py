"""The `alb` IngressClass and Ingress: an internet-facing ALB, IP targets (frontend-proxy's pods),
HTTP 80, health-checked on /healthz. The AWS Load Balancer Controller reads it in AWS; the local ALB
controller (`sim/alb`) reads the same annotations, so one Ingress serves both stages.
"""

from __future__ import annotations

import json

from infra.model import common
from infra.model.common import Obj
from infra.model.config import ModelConfig
from infra.model.services import HTTP_PORT

CLASS = "alb"
CONTROLLER = "ingress.k8s.aws/alb"
BACKEND = "frontend-proxy"
PREFIX = "alb.ingress.kubernetes.io/"


def ingress_class(config: ModelConfig) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": common.metadata(config, CLASS, "ingress", namespace=None),
        "spec": {"controller": CONTROLLER},
    }


def ingress(config: ModelConfig) -> Obj:
    annotations = {
        PREFIX + "scheme": "internet-facing",
        PREFIX + "target-type": "ip",
        PREFIX + "healthcheck-path": "/healthz",
        PREFIX + "listen-ports": json.dumps([{"HTTP": 80}]),
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": common.metadata(config, config.project, "ingress", annotations=annotations),
        "spec": {
            "ingressClassName": CLASS,
            "defaultBackend": {"service": {"name": BACKEND, "port": {"number": HTTP_PORT}}},
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": BACKEND, "port": {"number": HTTP_PORT}}},
                            }
                        ]
                    }
                }
            ],
        },
    }

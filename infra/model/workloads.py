"""The objects of one service, built from its table row: ServiceAccount, its Deployments with their
ConfigMaps (`<svc>-config`; a blue-green service's colours each their own, `<svc>-<colour>-config`) and
Services (one of each for a `rolling` service; for a `blue-green` one, each colour's and the
stable Service over the live colour: `infra.model.release`), and (by the row) HorizontalPodAutoscaler and
PodDisruptionBudget; plus what the services share: the `flags` ConfigMap and, locally, the AWS emulator's
credentials Secret.

The Deployment's pod template carries a checksum of the service's ConfigMap, so a config change rolls
the pods and an unchanged config does not; flags are not in it (services reload the flags file).
A Deployment whose service autoscales still sets `replicas` (the HPA's minimum): the apply step sets it
when it creates the Deployment only, and leaves it to the HPA afterwards.
"""

from __future__ import annotations

import base64
import json

from infra.model import common
from infra.model.common import Obj
from infra.model.config import ModelConfig, ModelError
from infra.model.release import COLOUR_LABEL, COLOURS, Colour, Release, Run, coloured, config_map_name
from infra.model.services import ALB_BACKEND, HTTP_PORT, ServiceRow
from services.common.flag_contract import Flag, flag_definitions

FLAGS_CONFIG_MAP = "flags"
FLAGS_KEY = "flags.json"
FLAGS_DIR = "/etc/shopstack/flags"
CREDENTIALS_SECRET = "aws-emulator-credentials"
TIER = "shop"
MAX_REPLICAS = 4
OTLP_ENDPOINT = "http://otel-collector:4318"
#: how long a pod that takes traffic keeps serving once it is told to stop, before its SIGTERM: long enough
#: for its address to leave every Service's endpoints (and, for the ALB's targets, the deregistration delay
#: more: see `drain_seconds`), so no new request meets a closed port
DRAIN_SECONDS = 10
KAFKA_BOOTSTRAP = "kafka:9092"


def _env_name(service: str) -> str:
    return service.upper().replace("-", "_")


def service_env(config: ModelConfig, row: ServiceRow) -> dict[str, str]:
    """The service's non-secret environment (its ConfigMap's data)."""
    env = {
        "PORT": str(HTTP_PORT),
        "FLAGS_FILE": f"{FLAGS_DIR}/{FLAGS_KEY}",
        "LOG_LEVEL": "INFO",
        "OTEL_SERVICE_NAME": row.name,
        "OTEL_EXPORTER_OTLP_ENDPOINT": OTLP_ENDPOINT,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        # as often as Prometheus scrapes (the SDK's default is a minute)
        "OTEL_METRIC_EXPORT_INTERVAL": "15000",
    }
    env |= {f"{_env_name(peer)}_URL": f"http://{peer}:{HTTP_PORT}" for peer in row.peers}
    env |= dict(row.extra_env)
    if row.kafka:
        env["KAFKA_BOOTSTRAP_SERVERS"] = KAFKA_BOOTSTRAP
    if row.table == "carts":
        env["CART_TABLE"] = config.carts_table
    if row.table == "orders":
        env["ORDERS_TABLE"] = config.orders_table
    if row.table == "checkouts":
        env["CHECKOUTS_TABLE"] = config.checkouts_table
    if row.callers:
        env["DRAIN_SECONDS"] = str(drain_seconds(config, row))
    if row.table:
        env |= {"AWS_REGION": config.region, "AWS_DEFAULT_REGION": config.region}
        if config.aws_endpoint_url:
            env["AWS_ENDPOINT_URL"] = config.aws_endpoint_url
    return env | dict(config.env.get(row.name, {}))


def flags_config_map(config: ModelConfig) -> Obj:
    values: dict[Flag, bool | float] = {}
    for name, value in config.flags.items():
        try:
            values[Flag(name)] = value
        except ValueError:
            known = ", ".join(f.value for f in Flag)
            raise ModelError(f"unknown flag {name!r} (known: {known})") from None
    document = flag_definitions(values)
    data = {FLAGS_KEY: json.dumps(document, indent=2, sort_keys=True) + "\n"}
    return common.config_map(config, FLAGS_CONFIG_MAP, FLAGS_CONFIG_MAP, data, TIER)


def credentials_secret(config: ModelConfig) -> Obj | None:
    """The AWS emulator's credentials (local stage only; in AWS the services assume their IRSA role)."""
    if config.aws_credentials is None:
        return None
    key_id, secret = config.aws_credentials
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": common.metadata(config, CREDENTIALS_SECRET, CREDENTIALS_SECRET, tier=TIER),
        "type": "Opaque",
        # `data`, not `stringData`: the API server keeps only `data`, which the deploy compares
        "data": {
            "AWS_ACCESS_KEY_ID": base64.b64encode(key_id.encode()).decode(),
            "AWS_SECRET_ACCESS_KEY": base64.b64encode(secret.encode()).decode(),
        },
    }


def pod_env(config: ModelConfig) -> list[Obj]:
    """The variables that differ by pod: the pod and node names (downward API), and the resource
    attributes that carry them, so that every span and metric names the replica that made it."""
    resource = (
        f"service.namespace={config.project},deployment.environment={config.stage},"
        f"k8s.namespace.name={config.namespace},k8s.cluster.name={config.cluster_name},"
        "k8s.pod.name=$(K8S_POD_NAME),k8s.node.name=$(K8S_NODE_NAME)"
    )
    return [
        _field_env("K8S_POD_NAME", "metadata.name"),
        _field_env("K8S_NODE_NAME", "spec.nodeName"),
        {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": resource},
    ]


def _field_env(name: str, path: str) -> Obj:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def desired_run(config: ModelConfig, row: ServiceRow, image: str) -> Run:
    """What `row`'s pods should run: `image` with the configuration the model gives it now."""
    return Run(image, service_env(config, row))


def drain_seconds(config: ModelConfig, row: ServiceRow) -> int:
    """How long a pod of `row` keeps serving once told to stop, before its SIGTERM: the ALB's target
    (frontend-proxy) drains for the target groups' deregistration delay; a Service's endpoint goes at once."""
    if row.name == ALB_BACKEND:
        return config.deregistration_delay_seconds + DRAIN_SECONDS // 2
    return DRAIN_SECONDS


def _container(config: ModelConfig, row: ServiceRow, image: str, colour: Colour | None) -> Obj:
    env_from: list[Obj] = [{"configMapRef": {"name": config_map_name(row.name, colour)}}]
    if row.table and config.aws_credentials is not None:
        env_from.append({"secretRef": {"name": CREDENTIALS_SECRET}})
    tmp_mount = common.tmp_volume()[1]
    size = row.size
    container: Obj = {
        "name": row.name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "envFrom": env_from,
        "env": pod_env(config),
        "resources": common.resources(size.cpu, size.memory, size.cpu_limit, size.memory_limit),
        "readinessProbe": common.http_probe("/readyz", "http", period=5, failures=3),
        "livenessProbe": common.http_probe("/healthz", "http", period=10, failures=3, delay=10),
        "securityContext": common.container_security(),
        "volumeMounts": [tmp_mount, {"name": "flags", "mountPath": FLAGS_DIR, "readOnly": True}],
    }
    if row.callers:
        # lame duck: the service turns unready and closes each pooled connection after its answer, for
        # DRAIN_SECONDS (its ConfigMap), then the kubelet sends SIGTERM
        container["lifecycle"] = {"preStop": {"httpGet": {"path": "/drain", "port": "http"}}}
    return container


def deployment(
    config: ModelConfig, row: ServiceRow, name: str, run: Run, replicas: int, colour: Colour | None = None
) -> Obj:
    """The Deployment `name` of `row`'s pods running `run` (of one colour, for a blue-green service)."""
    annotations = {
        common.CHECKSUM_ANNOTATION: common.checksum(run.env),
        common.SCRAPE: "true",
        common.SCRAPE_PORT: str(HTTP_PORT),
        common.SCRAPE_PATH: "/metrics",
    }
    pod_skips = (
        common.skips(
            (
                "CKV_K8S_35",
                "local stage only: the AWS emulator's fixed test credentials, read by the SDK from env",
            ),
        )
        if row.table and config.aws_credentials is not None
        else {}
    )
    pod_labels = common.labels(config, row.name, TIER) | _colour_label(colour)
    grace = row.grace_seconds + (drain_seconds(config, row) if row.callers else 0)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(config, name, row.name, tier=TIER, annotations=pod_skips or None)
        | {"labels": common.labels(config, row.name, TIER) | _colour_label(colour)},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": common.selector(row.name) | _colour_label(colour)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": {
                    "serviceAccountName": row.name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": grace,
                    "securityContext": common.pod_security(),
                    "topologySpreadConstraints": common.zone_spread(row.name),
                    "containers": [_container(config, row, run.image, colour)],
                    "volumes": [
                        common.tmp_volume()[0],
                        {"name": "flags", "configMap": {"name": FLAGS_CONFIG_MAP}},
                    ],
                },
            },
        },
    }


def _colour_label(colour: Colour | None) -> dict[str, str]:
    return {COLOUR_LABEL: colour} if colour else {}


def service(config: ModelConfig, row: ServiceRow, name: str, colour: Colour | None = None) -> Obj:
    """The Service `name` over `row`'s pods (of one colour only, when `colour` is given)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(config, name, row.name, tier=TIER),
        "spec": {
            "type": "ClusterIP",
            "selector": common.selector(row.name) | _colour_label(colour),
            "ports": [common.port("http", HTTP_PORT)],
        },
    }


def hpa(config: ModelConfig, row: ServiceRow, target: str, minimum: int) -> Obj:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": common.metadata(config, row.name, row.name, tier=TIER),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": minimum,
            "maxReplicas": max(MAX_REPLICAS, minimum),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": config.autoscaling.hpa_cpu_target_percent,
                        },
                    },
                }
            ],
            # how long it keeps its highest recent recommendation before scaling in (the cluster
            # autoscaler then removes the nodes the pods leave unneeded)
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": config.autoscaling.hpa_scale_down_stabilization_seconds
                }
            },
        },
    }


def pdb(config: ModelConfig, row: ServiceRow) -> Obj:
    """At least one pod of the service (of either colour) stays up through voluntary disruptions."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": common.metadata(config, row.name, row.name, tier=TIER),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": common.selector(row.name)}},
    }


def service_objects(config: ModelConfig, row: ServiceRow, image: str, replicas: int) -> list[Obj]:
    """Every object of one service (any order: `render` sorts them): one Deployment and Service for a
    `rolling` service; two colours and the stable Service that selects the live one for `blue-green`."""
    desired = desired_run(config, row, image)
    objects: list[Obj] = [
        common.service_account(config, row.name, role_arn=config.role_arns.get(row.name), tier=TIER),
    ]
    if config.strategy(row.name) == "rolling":
        objects += [
            common.config_map(config, config_map_name(row.name), row.name, desired.env, TIER),
            service(config, row, row.name),
            deployment(config, row, row.name, desired, replicas),
        ]
        scaled = row.name
    else:
        release = config.releases.get(row.name, Release())
        objects.append(service(config, row, row.name, None if release.every_colour else release.live))
        for colour in COLOURS:
            name = coloured(row.name, colour)
            count = release.replicas.get(colour, replicas if colour == release.live else 0)
            run = release.runs.get(colour, desired)
            objects += [
                common.config_map(config, config_map_name(row.name, colour), row.name, run.env, TIER),
                service(config, row, name, colour),
                deployment(config, row, name, run, count, colour),
            ]
        scaled = coloured(row.name, release.live)
    if row.autoscaled:
        objects.append(hpa(config, row, scaled, replicas))
    if replicas >= 2:
        objects.append(pdb(config, row))
    return objects

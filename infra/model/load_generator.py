"""The load generator (`services/load_generator`: Locust with the OpenTelemetry Demo's shoppers): one pod,
its shoppers sent to frontend-proxy's Service inside the cluster (not through the ALB), its web UI on 8089
behind a ClusterIP Service that nothing in the cluster may call (its NetworkPolicy, `CALLERS`): operators
reach it with `kubectl port-forward svc/load-generator 8089`.

It is configured as Locust is, by `LOCUST_*` variables in its ConfigMap. How many shoppers it runs is the
deploy's `load_users` setting (or what `infra.ops.load` set), given to the model as the load generator's
`LOCUST_USERS` in `config.env`; 0 leaves the web UI up and generates nothing. A change of it, or of any
other variable, replaces the pod (its template carries the ConfigMap's checksum; one replica, recreated,
so two never run at once). It reads the flags file as the services do, for `loadGeneratorFloodHomepage`.
"""

from __future__ import annotations

from typing import Final

from infra.model import common
from infra.model.common import Obj
from infra.model.config import ModelConfig, ModelError
from infra.model.services import ALB_BACKEND, HTTP_PORT, LOAD_GENERATOR
from infra.model.workloads import FLAGS_CONFIG_MAP, FLAGS_DIR, FLAGS_KEY

WEB_PORT: Final = 8089
USERS_VARIABLE: Final = "LOCUST_USERS"
#: shoppers when nothing says otherwise (`infra.settings.Settings.load_users` has the same default)
DEFAULT_USERS: Final = 5
#: the most shoppers the one pod runs (Locust's one process: about a core at a few hundred)
MAX_USERS: Final = 500
TIER: Final = "platform"


def users(config: ModelConfig) -> int:
    """How many shoppers the load generator runs: its `LOCUST_USERS` in `config.env`, else the default."""
    value = config.env.get(LOAD_GENERATOR, {}).get(USERS_VARIABLE, str(DEFAULT_USERS))
    try:
        count = int(value)
    except ValueError:
        count = -1
    if not 0 <= count <= MAX_USERS:
        raise ModelError(
            f"{USERS_VARIABLE} of {LOAD_GENERATOR!r} must be a whole number from 0 to {MAX_USERS}"
        )
    return count


def load_generator_env(config: ModelConfig) -> dict[str, str]:
    """The load generator's variables (its ConfigMap's data); `config.env`'s win over the model's."""
    count = users(config)
    env = {
        "LOCUST_HOST": f"http://{ALB_BACKEND}:{HTTP_PORT}",
        USERS_VARIABLE: str(count),
        # a new shopper a second: the shop sees the load ramp up, not a step
        "LOCUST_SPAWN_RATE": "1",
        # swarm as soon as it starts, the web UI still up to watch, change or stop it
        "LOCUST_AUTOSTART": "true" if count else "false",
        "LOCUST_HEADLESS": "false",
        "LOCUST_WEB_PORT": str(WEB_PORT),
        "LOCUST_LOGLEVEL": "INFO",
        "FLAGS_FILE": f"{FLAGS_DIR}/{FLAGS_KEY}",
        "PYTHONUNBUFFERED": "1",
    }
    return env | dict(config.env.get(LOAD_GENERATOR, {}))


def load_generator_objects(config: ModelConfig, image: str) -> list[Obj]:
    """Its ServiceAccount, ConfigMap, Deployment and web UI Service (any order: `render` sorts them)."""
    env = load_generator_env(config)
    tmp_volume, tmp_mount = common.tmp_volume()
    container: Obj = {
        "name": LOAD_GENERATOR,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "web", "containerPort": WEB_PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": f"{LOAD_GENERATOR}-config"}}],
        "resources": common.resources("100m", "128Mi", "1", "384Mi"),
        "readinessProbe": common.http_probe("/", "web", period=5, failures=3),
        "livenessProbe": common.http_probe("/", "web", period=10, failures=3, delay=10),
        "securityContext": common.container_security(),
        "volumeMounts": [tmp_mount, {"name": "flags", "mountPath": FLAGS_DIR, "readOnly": True}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(config, LOAD_GENERATOR, LOAD_GENERATOR, tier=TIER),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": common.selector(LOAD_GENERATOR)},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {
                    "labels": common.labels(config, LOAD_GENERATOR, TIER),
                    "annotations": {common.CHECKSUM_ANNOTATION: common.checksum(env)},
                },
                "spec": {
                    "serviceAccountName": LOAD_GENERATOR,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    # Locust stops its shoppers and prints its statistics on SIGTERM
                    "terminationGracePeriodSeconds": 15,
                    "securityContext": common.pod_security(),
                    "containers": [container],
                    "volumes": [tmp_volume, {"name": "flags", "configMap": {"name": FLAGS_CONFIG_MAP}}],
                },
            },
        },
    }
    return [
        common.service_account(config, LOAD_GENERATOR, tier=TIER),
        common.config_map(config, f"{LOAD_GENERATOR}-config", LOAD_GENERATOR, env, TIER),
        common.cluster_service(config, LOAD_GENERATOR, LOAD_GENERATOR, [common.port("web", WEB_PORT)]),
        deployment,
    ]

"""Kafka: one KRaft node (broker and controller in one process) as a StatefulSet, its headless Service
and the `kafka` Service on 9092 that clients bootstrap from and that the broker advertises.

The data volume is a gp3 volumeClaimTemplate in AWS (with the `gp3` StorageClass, EBS CSI driver) and an
emptyDir in the local stage, whose kubelet mounts only configMap, secret and emptyDir volumes (the local
stand-in, Tansu, keeps its log in the emulator's S3 anyway).
"""

from __future__ import annotations

from infra.model import common, images
from infra.model.common import Obj
from infra.model.config import ModelConfig
from infra.model.services import KAFKA

PORT = 9092
CONTROLLER_PORT = 9093
HEADLESS = "kafka-headless"
STORAGE_CLASS = "gp3"
DATA_DIR = "/var/lib/kafka/data"
#: the image's `appuser`; the launcher writes its generated config into the image's /opt/kafka/config
UID = 1000
#: a fixed KRaft cluster id (base64 of 16 bytes), so a restarted node formats nothing anew
CLUSTER_ID = "c2hvcHN0YWNrLWthZmthMQ"


def _env(config: ModelConfig) -> dict[str, str]:
    return {
        "CLUSTER_ID": CLUSTER_ID,
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{PORT},CONTROLLER://:{CONTROLLER_PORT}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://kafka.{config.namespace}.svc.cluster.local:{PORT}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@localhost:{CONTROLLER_PORT}",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_NUM_PARTITIONS": "1",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "true",
        "KAFKA_LOG_DIRS": DATA_DIR,
        "KAFKA_HEAP_OPTS": "-Xms512m -Xmx512m",
    }


def _statefulset(config: ModelConfig) -> Obj:
    data_volume: list[Obj] = []
    claims: list[Obj] = []
    if config.stage == "local":
        data_volume = [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}]
    else:
        claims = [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "labels": common.labels(config, KAFKA)},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": STORAGE_CLASS,
                    "resources": {"requests": {"storage": "10Gi"}},
                },
            }
        ]
    tmp_volume, tmp_mount = common.tmp_volume()
    container: Obj = {
        "name": "kafka",
        "image": images.KAFKA,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "kafka", "containerPort": PORT, "protocol": "TCP"},
            {"name": "controller", "containerPort": CONTROLLER_PORT, "protocol": "TCP"},
        ],
        "env": [{"name": k, "value": v} for k, v in _env(config).items()],
        "resources": common.resources("200m", "768Mi", "1", "1280Mi"),
        "readinessProbe": common.tcp_probe("kafka", period=5, failures=6),
        "livenessProbe": common.tcp_probe("kafka", period=10, failures=6, delay=30),
        "securityContext": common.container_security(UID, read_only=False),
        "volumeMounts": [tmp_mount, {"name": "data", "mountPath": DATA_DIR}],
    }
    annotations = common.skips(
        ("CKV_K8S_22", "the apache/kafka launcher writes its generated server.properties into the image"),
        ("CKV_K8S_40", "the apache/kafka image owns its files as appuser (uid 1000)"),
    )
    spec: Obj = {
        "serviceName": HEADLESS,
        "replicas": 1,
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": common.selector(KAFKA)},
        "template": {
            "metadata": {
                "labels": common.labels(config, KAFKA),
                # one broker, no replicas: a scale-down moving it is an outage of every publish (and its
                # gp3 volume is bound to its zone)
                "annotations": {common.SAFE_TO_EVICT: "false"},
            },
            "spec": {
                "serviceAccountName": KAFKA,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 60,
                "securityContext": common.pod_security(UID),
                "containers": [container],
                "volumes": [tmp_volume, *data_volume],
            },
        },
    }
    if claims:
        spec["volumeClaimTemplates"] = claims
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": common.metadata(config, KAFKA, KAFKA, annotations=annotations),
        "spec": spec,
    }


def storage_class(config: ModelConfig) -> Obj:
    """gp3, encrypted, bound where the pod lands (aws stage; needs the EBS CSI driver add-on)."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": common.metadata(config, STORAGE_CLASS, KAFKA, namespace=None),
        "provisioner": "ebs.csi.aws.com",
        "parameters": {"type": "gp3", "encrypted": "true"},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }


def kafka_objects(config: ModelConfig) -> list[Obj]:
    ports = [common.port("kafka", PORT)]
    objects = [
        common.service_account(config, KAFKA),
        common.cluster_service(
            config, HEADLESS, KAFKA, [*ports, common.port("controller", CONTROLLER_PORT)], headless=True
        ),
        common.cluster_service(config, KAFKA, KAFKA, ports),
        _statefulset(config),
    ]
    if config.stage == "aws":
        objects.append(storage_class(config))
    return objects

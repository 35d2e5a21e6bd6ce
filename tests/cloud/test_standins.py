"""The image stand-ins: the Kafka image runs Tansu with its storage in the AWS emulator's S3, so that a
restarted broker still has its topic and a group's committed offset; the Collector image runs the
collector stand-in on the configuration its pod mounts, in a pod of a real cluster; the Prometheus image
runs `prometheus` with the container's args as the pod's volumes mount them; an image with neither a
stand-in nor a local build is ErrImagePull."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from containers.nodestore import ImageStore
from infra.model import images
from infra.model.collector import collector_config
from sim.standins import table as standins
from sim.standins.table import Placement
from sim.supervisor.process import ManagedProcess, http_ok, tcp_open
from tests.support.cluster import Cluster, get_json, poll, start_cluster
from tests.support.kafka import create_topic

#: the cluster's pods get 127.76.0.0/17; the stand-ins a test runs directly listen on 127.76.200.x
CLUSTER_CIDR = "127.76.0.0/16"
GROUP = "accounting"
KAFKA_WAIT = 30.0


@pytest.mark.parametrize(
    ("reference", "standin"),
    [
        ("apache/kafka:3.7.0", "kafka"),
        ("docker.io/bitnami/kafka:3.7", "kafka"),
        ("confluentinc/cp-kafka:7.6.1", "kafka"),
        ("otel/opentelemetry-collector-contrib:0.111.0", "otel-collector"),
        ("otel/opentelemetry-collector@sha256:" + "a" * 64, "otel-collector"),
        ("docker.io/jaegertracing/jaeger:2.15.1@sha256:" + "b" * 64, "jaeger"),
        ("jaegertracing/all-in-one:1.60", None),
        ("prom/prometheus:v2.53.0", "prometheus"),
        ("quay.io/prometheus/prometheus:v2.53.0", "prometheus"),
        ("shopstack/payment:latest", None),
        ("example.org/kafka:1", None),
    ],
)
def test_the_table_matches_image_repositories(reference: str, standin: str | None) -> None:
    found = standins.find(reference)
    assert (found.name if found else None) == standin


def start_broker(runspec: standins.RunSpec, log: Path, host: str) -> ManagedProcess:
    broker = ManagedProcess("kafka-standin", runspec.argv, log, env=runspec.env, cwd=runspec.working_dir)
    return broker.start().wait_ready(lambda: tcp_open(host, standins.KAFKA_PORT), timeout=KAFKA_WAIT)


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=value)
    finally:
        await producer.stop()


async def consume_and_commit(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """Read `count` messages with the group and commit after them."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen = [(await asyncio.wait_for(consumer.getone(), KAFKA_WAIT)).value for _ in range(count)]
        await consumer.commit({TopicPartition(topic, 0): count})
        return [v for v in seen if v is not None]
    finally:
        await consumer.stop()


async def resume(bootstrap: str, topic: str) -> tuple[int | None, bytes | None, set[str]]:
    """The group's committed offset, the next message it reads, and the broker's topics."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        committed = await consumer.committed(TopicPartition(topic, 0))
        message = await asyncio.wait_for(consumer.getone(), KAFKA_WAIT)
        return committed, message.value, set(await consumer.topics())
    finally:
        await consumer.stop()


def test_kafka_standin_keeps_topic_and_committed_offset_across_a_restart(
    tmp_path: Path, aws_env: dict[str, str]
) -> None:
    host = "127.76.200.9"
    placement = Placement(host, aws_endpoint=aws_env["AWS_ENDPOINT_URL"])
    runspec = standins.resolve("apache/kafka:3.7.0", placement, tmp_path / "standins")
    assert runspec is not None
    assert runspec.command(["/etc/kafka/docker/run"], ["--ignored"]) == runspec.argv
    bootstrap = f"{host}:{standins.KAFKA_PORT}"
    topic = "orders-restart"

    broker = start_broker(runspec, tmp_path / "kafka-1.log", host)
    try:
        asyncio.run(create_topic(bootstrap, topic, 1))
        asyncio.run(produce(bootstrap, topic, [b"order-1", b"order-2", b"order-3"]))
        assert asyncio.run(consume_and_commit(bootstrap, topic, 2)) == [b"order-1", b"order-2"]
    finally:
        broker.stop(grace=10)
    assert not tcp_open(host, standins.KAFKA_PORT)

    broker = start_broker(runspec, tmp_path / "kafka-2.log", host)
    try:
        committed, following, topics = asyncio.run(resume(bootstrap, topic))
    finally:
        broker.stop(grace=10)
    assert committed == 2
    assert following == b"order-3"
    assert topic in topics


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="the prometheus binary is not installed")
def test_prometheus_standin_runs_with_the_config_file_the_pod_mounts(tmp_path: Path) -> None:
    host = "127.76.200.10"
    config = tmp_path / "config"
    config.mkdir()
    (config / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
    image = standins.resolve("quay.io/prometheus/prometheus:v2.53.0", Placement(host), tmp_path / "s")
    assert image is not None
    runspec = image.with_mounts({"/etc/prometheus": config})
    argv = runspec.command(None, ["--config.file=/etc/prometheus/prometheus.yml"])
    assert f"--config.file={config}/prometheus.yml" in argv
    prometheus = ManagedProcess("prometheus", argv, tmp_path / "prometheus.log", env=runspec.env)
    prometheus.start()
    try:
        prometheus.wait_ready(lambda: http_ok(f"http://{host}:{standins.PROMETHEUS_PORT}/-/ready"))
        flags = httpx.get(f"http://{host}:{standins.PROMETHEUS_PORT}/api/v1/status/flags").json()
        assert flags["data"]["config.file"] == f"{config}/prometheus.yml"
    finally:
        prometheus.stop(grace=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, aws_env: dict[str, str]) -> Iterator[Cluster]:
    """A cluster with one node whose image store holds no image at all, in the AWS emulator's cloud."""
    workdir = tmp_path_factory.mktemp("standins")
    cloud = ["--aws-endpoint", aws_env["AWS_ENDPOINT_URL"], "--cluster-name", "standins"]
    running = start_cluster(workdir, ImageStore(workdir / "images"), CLUSTER_CIDR, extra_args=cloud)
    try:
        yield running
    finally:
        running.process.stop(grace=10)


def one_container_pod(name: str, image: str, **container: object) -> str:
    spec = {"terminationGracePeriodSeconds": 5, "containers": [{"name": "app", "image": image, **container}]}
    return json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}
    )


def test_collector_image_runs_the_stand_in_on_the_config_its_pod_mounts(cluster: Cluster) -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "collector-config", "namespace": "default"},
        "data": {"config.yaml": yaml.safe_dump(collector_config())},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(config_map))
    probe = {"tcpSocket": {"port": standins.OTLP_HTTP_PORT}, "periodSeconds": 1}
    pod = json.loads(
        one_container_pod(
            "collector",
            images.COLLECTOR,
            args=["--config=/etc/otelcol-contrib/config.yaml"],
            readinessProbe=probe,
            volumeMounts=[{"name": "config", "mountPath": "/etc/otelcol-contrib"}],
        )
    )
    pod["spec"]["volumes"] = [{"name": "config", "configMap": {"name": "collector-config"}}]
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    try:
        cluster.kubectl("wait", "--for=condition=Ready", "pod/collector", "--timeout=60s")
        pod_ip = get_json(cluster.kubectl, "pod", "collector")["status"]["podIP"]
        exported = httpx.post(
            f"http://{pod_ip}:{standins.OTLP_HTTP_PORT}/v1/traces",
            json={"resourceSpans": []},
            headers={"Content-Type": "application/json"},
        )
        assert exported.status_code == 200
        assert httpx.get(f"http://{pod_ip}:8889/metrics").status_code == 200
    finally:
        cluster.kubectl("delete", "pod", "collector", "--wait=true", "--timeout=30s")
        cluster.kubectl("delete", "configmap", "collector-config")


def test_an_image_with_no_standin_and_no_build_fails_with_err_image_pull(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=one_container_pod("nowhere", "example.org/team/nothing:1.0"))

    def waiting() -> dict[str, str]:
        statuses = get_json(cluster.kubectl, "pod", "nowhere")["status"].get("containerStatuses") or []
        state = statuses[0]["state"].get("waiting", {}) if statuses else {}
        return state if state.get("reason") in ("ErrImagePull", "ImagePullBackOff") else {}

    state = poll(waiting, within=30)
    assert state, get_json(cluster.kubectl, "pod", "nowhere")["status"]
    assert "example.org/team/nothing:1.0" in state["message"]
    cluster.kubectl("delete", "pod", "nowhere", "--wait=true", "--timeout=30s")


def test_a_kafka_pod_replaced_by_a_new_one_keeps_a_committed_order(cluster: Cluster) -> None:
    """The broker pod is deleted and a new one (a new broker process) takes its place: the topic,
    the order not yet read and the group's committed offset are all still there, kept in the emulator's S3."""
    probe = {"tcpSocket": {"port": standins.KAFKA_PORT}, "periodSeconds": 1}
    manifest = one_container_pod("kafka", "apache/kafka:3.8.0", readinessProbe=probe)
    topic = "orders-pod"

    def start_pod() -> str:
        cluster.kubectl("apply", "-f", "-", input=manifest)
        cluster.kubectl("wait", "--for=condition=Ready", "pod/kafka", "--timeout=60s")
        return f"{get_json(cluster.kubectl, 'pod', 'kafka')['status']['podIP']}:{standins.KAFKA_PORT}"

    first = start_pod()
    asyncio.run(create_topic(first, topic, 1))
    asyncio.run(produce(first, topic, [b"order-1", b"order-2"]))
    assert asyncio.run(consume_and_commit(first, topic, 1)) == [b"order-1"]
    cluster.kubectl("delete", "pod", "kafka", "--wait=true", "--timeout=30s")
    assert not tcp_open(first.split(":")[0], standins.KAFKA_PORT)

    second = start_pod()
    try:
        committed, following, topics = asyncio.run(resume(second, topic))
    finally:
        cluster.kubectl("delete", "pod", "kafka", "--wait=true", "--timeout=30s")
    assert committed == 1
    assert following == b"order-2"
    assert topic in topics

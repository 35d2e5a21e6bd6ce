"""The collector and Jaeger stand-ins as the kubelet runs them: each resolved from the deploy's pinned image,
its args translated to the rendered ConfigMap written where the pod mounts it, and the cluster's names
resolved as in a pod (the collector reaches `jaeger:4317`). Spans sent over OTLP (HTTP and gRPC) come out
of Jaeger's query API with their resource attributes and parentage; spanmetrics' series and the
services' metrics appear on the collector's Prometheus exporter with the collector's names and labels;
logs come out of the debug exporter in the collector's log; a component the stand-in does not implement
is refused in one line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from infra.model import images, render
from sim.network.dns import search_domains
from sim.network.node import SHIM_DIR
from sim.network.shim import cluster_resolver
from sim.standins import table as standins
from sim.standins.table import Placement
from sim.supervisor.process import ManagedProcess, http_ok, tcp_open
from tests.support.collector_logs import parse
from tests.support.jaeger import JaegerQuery
from tests.unit.model_configs import LOCAL, find

COLLECTOR_HOST = "127.78.0.1"
JAEGER_HOST = "127.78.0.2"
START_SECONDS = 30.0
#: the rendered spanmetrics flush interval (15 s) and the batch timeout, with room
METRICS_SECONDS = 40.0


@dataclass
class Stack:
    collector: ManagedProcess
    jaeger: JaegerQuery
    workdir: Path

    @property
    def otlp(self) -> str:
        return f"http://{COLLECTOR_HOST}:4318"

    def metrics(self) -> str:
        return httpx.get(f"http://{COLLECTOR_HOST}:8889/metrics", timeout=5).text

    def collector_log(self) -> str:
        return self.collector.log_path.read_text(errors="replace")


def pod_files(name: str, root: Path) -> tuple[dict[str, Path], list[str]]:
    """The ConfigMap volumes of the rendered Deployment `name`, written under `root` as the kubelet writes
    them (by mount path), and its container's args."""
    objects = render(LOCAL)
    spec = find(objects, "Deployment", name)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    mounts = {}
    for volume in spec["volumes"]:
        if "configMap" not in volume:
            continue
        directory = root / volume["name"]
        directory.mkdir(parents=True)
        for key, value in find(objects, "ConfigMap", volume["configMap"]["name"])["data"].items():
            (directory / key).write_text(value)
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        mounts[mount["mountPath"]] = directory
    return mounts, list(container["args"])


def standin(image: str, host: str, name: str, workdir: Path, hosts: Path) -> ManagedProcess:
    mounts, args = pod_files(name, workdir / f"{name}-volumes")
    runspec = standins.resolve(image, Placement(host), workdir / "standins")
    assert runspec is not None, f"no stand-in for {image}"
    runspec = runspec.with_mounts(mounts)
    argv = runspec.command(["/ignored/entrypoint"], args)
    (config,) = [a for a in argv if a.startswith("--config=")]
    assert Path(config.removeprefix("--config=")).is_file(), f"{config} is not the mounted ConfigMap"
    env = {
        **runspec.env,
        "PYTHONPATH": f"{SHIM_DIR}:{runspec.env['PYTHONPATH']}",
        cluster_resolver.HOSTS_VARIABLE: str(hosts),
        cluster_resolver.SEARCH_VARIABLE: " ".join(search_domains(LOCAL.namespace)),
    }
    return ManagedProcess(name, argv, workdir / f"{name}.log", env=env, cwd=runspec.working_dir)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("telemetry-standins")
    hosts = workdir / "hosts"
    hosts.write_text(f"{JAEGER_HOST} jaeger.{LOCAL.namespace}.svc.cluster.local\n")
    jaeger = standin(images.JAEGER, JAEGER_HOST, "jaeger", workdir, hosts).start()
    collector = standin(images.COLLECTOR, COLLECTOR_HOST, "otel-collector", workdir, hosts).start()
    query = JaegerQuery(f"http://{JAEGER_HOST}:16686")
    try:
        jaeger.wait_ready(lambda: http_ok(f"http://{JAEGER_HOST}:13133/status"), timeout=START_SECONDS)
        collector.wait_ready(lambda: tcp_open(COLLECTOR_HOST, 4318), timeout=START_SECONDS)
        yield Stack(collector, query, workdir)
    finally:
        query.close()
        codes = (collector.stop(grace=10), jaeger.stop(grace=10))
    assert codes == (0, 0), f"exit codes {codes}{collector.log_tail()}{jaeger.log_tail()}"


def tracer_provider(stack: Stack, service: str, pod: str) -> TracerProvider:
    resource = Resource.create(
        {"service.name": service, "k8s.pod.name": pod, "deployment.environment": "local"}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{stack.otlp}/v1/traces")))
    return provider


def test_spans_sent_over_otlp_http_come_out_of_jaeger_with_their_resource_and_parentage(stack: Stack) -> None:
    checkout = tracer_provider(stack, "checkout", "checkout-7f9-abcde")
    payment = tracer_provider(stack, "payment", "payment-6c4-fghij")
    tracer = checkout.get_tracer("tests")
    with (
        tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as root,
        tracer.start_as_current_span("POST", kind=SpanKind.CLIENT) as call,
    ):
        span = payment.get_tracer("tests").start_span("POST /charges", kind=SpanKind.SERVER)
        span.set_attribute("app.payment.amount", 42)
        span.set_status(Status(StatusCode.ERROR, "card declined"))
        span.end()
    trace_id = format(root.get_span_context().trace_id, "032x")
    checkout.shutdown()
    payment.shutdown()

    spans = stack.jaeger.wait_for_trace(trace_id, services={"checkout", "payment"}, timeout=20)
    by_name = {s.name: s for s in spans}
    charge = by_name["POST /charges"]
    assert charge.parent_span_id == format(call.get_span_context().span_id, "016x")
    assert by_name["POST"].parent_span_id == format(root.get_span_context().span_id, "016x")
    assert by_name["POST /checkout"].parent_span_id is None
    assert charge.resource["k8s.pod.name"] == "payment-6c4-fghij"
    assert charge.resource["deployment.environment"] == "local"
    assert (charge.kind, charge.status.code, charge.status.message) == ("SERVER", "ERROR", "card declined")
    assert charge.attributes["app.payment.amount"] == 42
    assert {"checkout", "payment"} <= set(stack.jaeger.services())
    assert "POST /charges" in stack.jaeger.operations("payment")
    [found] = stack.jaeger.find_traces("payment", tags={"app.payment.amount": 42}, lookback=600)
    assert {s.trace_id for s in found} == {trace_id}
    assert ("checkout", "payment") in {(d.parent, d.child) for d in stack.jaeger.dependencies()}


def test_spans_sent_over_otlp_grpc_arrive_too(stack: Stack) -> None:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    attribute = resource.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", "fraud-detection"
    span = resource.scope_spans.add().spans.add()
    span.trace_id, span.span_id = (
        bytes.fromhex("5b8efff798038103d269b633813fc60c"),
        bytes.fromhex("eee19b7ec3c1b174"),
    )
    span.name, span.kind = "assess order", 1
    span.start_time_unix_nano = time.time_ns()
    span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000
    with grpc.insecure_channel(f"{COLLECTOR_HOST}:4317") as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10)  # type: ignore[no-untyped-call]
    [stored] = stack.jaeger.wait_for_trace("5b8efff798038103d269b633813fc60c", timeout=20)
    assert (stored.service, stored.name, stored.kind) == ("fraud-detection", "assess order", "INTERNAL")


def test_spanmetrics_and_the_services_metrics_appear_on_the_prometheus_exporter(stack: Stack) -> None:
    provider = tracer_provider(stack, "cart", "cart-5d8-klmno")
    with provider.get_tracer("tests").start_as_current_span("GET /carts/<user_id>", kind=SpanKind.SERVER):
        pass
    provider.shutdown()
    metrics = ExportMetricsServiceRequest()
    resource = metrics.resource_metrics.add()
    attribute = resource.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", "cart"
    metric = resource.scope_metrics.add().metrics.add()
    metric.name, metric.unit = "http.server.duration", "ms"
    metric.histogram.aggregation_temporality = 2
    point = metric.histogram.data_points.add(
        count=3, sum=12.5, bucket_counts=[1, 2, 0], explicit_bounds=[5, 10]
    )
    point.time_unix_nano = time.time_ns()
    posted = httpx.post(
        f"{stack.otlp}/v1/metrics",
        content=metrics.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert posted.status_code == 200

    def samples() -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for family in text_string_to_metric_families(stack.metrics()):
            for sample in family.samples:
                found.setdefault(sample.name, []).append(sample)
        return found

    deadline = time.monotonic() + METRICS_SECONDS
    while "traces_span_metrics_calls_total" not in (found := samples()) and time.monotonic() < deadline:
        time.sleep(1)
    calls = [s for s in found["traces_span_metrics_calls_total"] if s.labels.get("service_name") == "cart"]
    assert calls, found.keys()
    labels = calls[0].labels
    assert labels["span_name"] == "GET /carts/<user_id>"
    assert (labels["span_kind"], labels["status_code"]) == ("SPAN_KIND_SERVER", "STATUS_CODE_UNSET")
    assert (labels["job"], labels["k8s_pod_name"]) == ("cart", "cart-5d8-klmno")
    assert calls[0].value == 1
    buckets = [
        s for s in found["traces_span_metrics_duration_milliseconds_bucket"] if s.labels["job"] == "cart"
    ]
    assert {s.labels["le"] for s in buckets} >= {"2", "15000", "+Inf"}
    [count] = [s for s in found["http_server_duration_milliseconds_count"] if s.labels["job"] == "cart"]
    assert count.value == 3


def test_logs_come_out_of_the_debug_exporter_in_the_collector_s_log(stack: Stack) -> None:
    resource = Resource.create({"service.name": "cart", "k8s.pod.name": "cart-5d8-klmno"})
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{stack.otlp}/v1/logs"))
    )
    logger = logging.getLogger("tests.standin_collector")
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        logger.warning("readiness failing on purpose (failedReadinessProbe)\nand a second line")
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    deadline = time.monotonic() + 20
    while not (records := [r for r in parse(stack.collector_log()) if "failedReadinessProbe" in r.body]):
        assert time.monotonic() < deadline, stack.collector.log_tail()
        time.sleep(0.5)
    (record,) = records
    assert (record.service, record.severity_text) == ("cart", "WARN")
    assert record.body.endswith("and a second line")
    assert record.resource["k8s.pod.name"] == "cart-5d8-klmno"


def test_the_otlp_receiver_answers_bad_exports_as_the_collector_does(stack: Stack) -> None:
    assert httpx.get(f"{stack.otlp}/v1/traces").status_code == 405
    wrong_type = httpx.post(f"{stack.otlp}/v1/traces", content=b"{}", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    malformed = httpx.post(
        f"{stack.otlp}/v1/traces", content=b"\xff\x00", headers={"Content-Type": "application/x-protobuf"}
    )
    assert malformed.status_code == 400


def test_jaeger_s_api_answers_its_structured_documents_and_errors(stack: Stack) -> None:
    base = f"http://{JAEGER_HOST}:16686"
    services = httpx.get(f"{base}/api/services").json()
    assert set(services) == {"data", "total", "limit", "offset", "errors"}
    missing = httpx.get(f"{base}/api/traces/{'ab' * 16}")
    assert missing.status_code == 404
    assert json.loads(missing.text)["errors"] == [{"code": 404, "msg": "trace not found"}]
    no_service = httpx.get(f"{base}/api/traces")
    assert no_service.status_code == 400
    assert "parameter 'service' is required" in no_service.text
    assert isinstance(httpx.get(f"{base}/api/dependencies").json()["data"], list)


@pytest.mark.parametrize(
    ("module", "document", "named"),
    [
        (
            "sim.telemetry.collector",
            {
                "receivers": {"otlp": {"protocols": {"http": {}}}},
                "processors": {"tail_sampling": {}},
                "exporters": {"debug": {}},
                "service": {
                    "pipelines": {
                        "traces": {
                            "receivers": ["otlp"],
                            "processors": ["tail_sampling"],
                            "exporters": ["debug"],
                        }
                    }
                },
            },
            "tail_sampling",
        ),
        (
            "sim.standins.jaeger",
            {
                "extensions": {"jaeger_storage": {"backends": {"main": {"badger": {}}}}},
                "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "0.0.0.0:4317"}}}},
                "exporters": {"jaeger_storage_exporter": {"trace_storage": "main"}},
                "service": {
                    "extensions": ["jaeger_storage"],
                    "pipelines": {
                        "traces": {"receivers": ["otlp"], "exporters": ["jaeger_storage_exporter"]}
                    },
                },
            },
            "badger",
        ),
    ],
)
def test_what_a_stand_in_does_not_implement_is_refused_in_one_line(
    tmp_path: Path, module: str, document: dict[str, Any], named: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(document))
    done = subprocess.run(
        [sys.executable, "-m", module, f"--config={config}", "--listen-address", "127.78.0.9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: invalid configuration: ")
    assert named in lines[0]

"""The local ALB end to end: a real moto server, a real `python -m sim.cluster` cluster with a node running
the ALB controller, the real data plane process and the real kubectl. An `alb` Ingress in front of a
2-replica payment Deployment becomes an ALB with rules and 2 targets in the emulator; requests through
the data plane answer 200; deleting or SIGKILLing a pod under steady load fails no request; a pod that
fails its readiness probe gets no more traffic; deleting the Ingress removes the ALB. The ELBv2 sync
alone: a second pass over unchanged state makes no write call. The data plane alone, in front of a
server the test controls: a deregistered target's in-flight request finishes while new ones stop going
to it, and what is still in flight once its target group's deregistration delay has run out is dropped;
the data plane measures a target's health itself, and with no healthy target left it fails open as an
ALB does; a cookie one client was given never goes out with another client's request."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from containers.nodestore import ImageStore
from sim.alb.elbv2 import ElbV2State
from sim.alb.model import CLUSTER_TAG, STACK_TAG, plan
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.conftest import BuiltImage
from tests.support.cluster import Cluster, get_json, payment_container, poll, start_cluster

HOST = "127.0.0.1"
ADDRESSES = "127.131.0.0/16"
CLUSTER_NAME = "shop"
STACK = "default/payment"
LOAD_RATE = 20  # requests per second
LOAD_SECONDS = 12


@dataclass
class DataPlaneProcess:
    process: ManagedProcess
    url: str
    admin: str
    access_log: Path


@pytest.fixture(scope="module")
def elb(aws_env: dict[str, str]) -> Any:
    return boto3.client(
        "elbv2",
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        region_name=aws_env["AWS_DEFAULT_REGION"],
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, image_store: ImageStore, aws_env: dict[str, str]
) -> Iterator[Cluster]:
    extra = ["--aws-endpoint", aws_env["AWS_ENDPOINT_URL"], "--cluster-name", CLUSTER_NAME]
    running = start_cluster(tmp_path_factory.mktemp("alb"), image_store, ADDRESSES, extra_args=extra)
    try:
        yield running
    finally:
        running.process.stop(grace=15)


@contextmanager
def running_dataplane(workdir: Path, aws_endpoint: str) -> Iterator[DataPlaneProcess]:
    """`python -m sim.alb` against `aws_endpoint`, at its default time scale, until the block ends."""
    port, admin = free_port(HOST), free_port(HOST)
    access_log = workdir / "access.log"
    argv = [sys.executable, "-m", "sim.alb", "--aws-endpoint", aws_endpoint]
    argv += ["--port", str(port), "--admin-port", str(admin), "--access-log", str(access_log)]
    argv += ["--log-level", "INFO"]
    process = ManagedProcess("alb", argv, workdir / "alb.log").start()
    try:
        process.wait_ready(lambda: http_ok(f"http://{HOST}:{admin}/healthz"))
        yield DataPlaneProcess(process, f"http://{HOST}:{port}", f"http://{HOST}:{admin}", access_log)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def dataplane(
    tmp_path_factory: pytest.TempPathFactory, aws_env: dict[str, str]
) -> Iterator[DataPlaneProcess]:
    with running_dataplane(tmp_path_factory.mktemp("alb-dataplane"), aws_env["AWS_ENDPOINT_URL"]) as running:
        yield running


def manifests(image: str, ready_dir: Path) -> list[str]:
    """A 2-replica payment Deployment whose pods are unready while `ready_dir/<pod name>.down` exists,
    its Service, and an `alb` Ingress in front of it."""
    container = payment_container(image)
    container["readinessProbe"] = {
        "exec": {"command": ["sh", "-c", f'test ! -e "{ready_dir}/$HOSTNAME.down"']},
        "periodSeconds": 1,
        "timeoutSeconds": 5,
        "failureThreshold": 2,
    }
    labels = {"app": "payment"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "payment", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "payment", "namespace": "default"},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    path = {"pathType": "Prefix", "backend": {"service": {"name": "payment", "port": {"number": 80}}}}
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "payment",
            "namespace": "default",
            "annotations": {
                "alb.ingress.kubernetes.io/scheme": "internet-facing",
                "alb.ingress.kubernetes.io/target-type": "ip",
                "alb.ingress.kubernetes.io/healthcheck-path": "/healthz",
                "alb.ingress.kubernetes.io/healthcheck-interval-seconds": "5",
                "alb.ingress.kubernetes.io/listen-ports": '[{"HTTP": 80}]',
            },
        },
        "spec": {
            "ingressClassName": "alb",
            "rules": [{"http": {"paths": [{**path, "path": "/healthz"}, {**path, "path": "/charges"}]}}],
        },
    }
    return [json.dumps(obj) for obj in (deployment, service, ingress)]


def our_load_balancer(elb: Any) -> dict[str, Any] | None:
    for lb in elb.describe_load_balancers()["LoadBalancers"]:
        tags = elb.describe_tags(ResourceArns=[lb["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"]
        found = {t["Key"]: t["Value"] for t in tags}
        if found.get(CLUSTER_TAG) == CLUSTER_NAME and found.get(STACK_TAG) == STACK:
            return dict(lb)
    return None


def registered(elb: Any) -> set[str]:
    lb = our_load_balancer(elb)
    if lb is None:
        return set()
    try:  # moto: no target group is attached until a rule forwards to it
        groups = elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
    except ClientError:
        return set()
    (group,) = groups
    health = elb.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]
    return {f"{d['Target']['Id']}:{d['Target']['Port']}" for d in health}


def ready_pods(cluster: Cluster) -> dict[str, dict[str, Any]]:
    items = get_json(cluster.kubectl, "pods", "-l", "app=payment")["items"]
    return {
        f"{p['status']['podIP']}:8080": p
        for p in items
        if not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    }


def healthy_in_dataplane(dataplane: DataPlaneProcess) -> set[str]:
    groups = httpx.get(f"{dataplane.admin}/targets", timeout=5).json()["target_groups"]
    return {t["target"] for targets in groups.values() for t in targets if t["state"] == "healthy"}


def settled(cluster: Cluster, elb: Any, dataplane: DataPlaneProcess) -> set[str]:
    """The two ready pods' addresses once the ALB has exactly them, all healthy in the data plane."""
    pods = set(ready_pods(cluster))
    if len(pods) == 2 and registered(elb) == pods and healthy_in_dataplane(dataplane) >= pods:
        return pods
    return set()


@pytest.fixture(scope="module")
def deployed(
    cluster: Cluster,
    elb: Any,
    dataplane: DataPlaneProcess,
    payment_image: BuiltImage,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The payment Deployment behind its `alb` Ingress, settled; the readiness marker directory."""
    ready_dir = tmp_path_factory.mktemp("readiness")
    for manifest in manifests(payment_image.reference, ready_dir):
        cluster.kubectl("apply", "-f", "-", input=manifest)
    cluster.kubectl("rollout", "status", "deployment/payment", "--timeout=90s")
    assert poll(lambda: settled(cluster, elb, dataplane), within=60), (
        registered(elb),
        ready_pods(cluster).keys(),
        dataplane.process.log_tail(),
    )
    return ready_dir


class SteadyLoad:
    """GET /healthz through the data plane at a fixed rate for a bounded time, counting outcomes."""

    def __init__(self, url: str, rate: int = LOAD_RATE, seconds: float = LOAD_SECONDS) -> None:
        self.url, self.rate, self.seconds = url, rate, seconds
        self.statuses: list[int] = []
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.join(self.seconds + 30)

    def _run(self) -> None:
        start = time.monotonic()
        with httpx.Client(timeout=10, trust_env=False) as client:
            for n in range(int(self.rate * self.seconds)):
                delay = start + n / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                try:
                    self.statuses.append(client.get(f"{self.url}/healthz").status_code)
                except httpx.HTTPError as err:
                    self.errors.append(repr(err))

    def failures(self) -> list[Any]:
        return [*self.errors, *(s for s in self.statuses if s != 200)]


def access_log_lines(dataplane: DataPlaneProcess) -> list[list[str]]:
    return [shlex.split(line) for line in dataplane.access_log.read_text().splitlines() if line.strip()]


def test_an_alb_ingress_becomes_an_alb_with_rules_and_two_targets_serving_200s(
    cluster: Cluster, elb: Any, dataplane: DataPlaneProcess, deployed: Path
) -> None:
    lb = our_load_balancer(elb)
    assert lb is not None
    assert lb["Scheme"] == "internet-facing"
    ingress = poll(lambda: get_json(cluster.kubectl, "ingress", "payment")["status"].get("loadBalancer"))
    assert ingress == {"ingress": [{"hostname": lb["DNSName"]}]}
    (listener,) = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert (listener["Port"], listener["Protocol"]) == (80, "HTTP")
    rules = elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    patterns = [
        c["PathPatternConfig"]["Values"] for r in rules if not r["IsDefault"] for c in r["Conditions"]
    ]
    assert patterns == [["/healthz", "/healthz/*"], ["/charges", "/charges/*"]]
    default = next(r for r in rules if r["IsDefault"])
    assert default["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "404"
    (group,) = elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
    assert (group["TargetType"], group["HealthCheckPath"], group["Port"]) == ("ip", "/healthz", 8080)
    pods = ready_pods(cluster)
    assert registered(elb) == set(pods)
    assert all(address.startswith("127.131.") for address in pods)

    with httpx.Client(timeout=10, trust_env=False) as client:
        answers = [client.get(f"{dataplane.url}/healthz") for _ in range(6)]
        missing = client.get(f"{dataplane.url}/nowhere")
        charge = client.get(f"{dataplane.url}/charges/no-such-charge")
        bad = {"amount": {"currency_code": "USD", "units": -1, "nanos": 0}}
        refused = client.post(f"{dataplane.url}/charges", json=bad)
        direct = client.post(f"http://{next(iter(pods))}/charges", json=bad)
    assert [a.status_code for a in answers] == [200] * 6
    assert missing.status_code == 404
    assert charge.status_code == 404  # the payment service's own answer: forwarded
    assert "application/json" in charge.headers.get("content-type", "")
    assert 400 <= refused.status_code < 500  # a POST body streamed through, the service's answer back
    assert (refused.status_code, refused.json()) == (direct.status_code, direct.json())
    # a line is written once its response is sent: the last one may lag its answer
    lines = poll(
        lambda: (
            [ln for ln in access_log_lines(dataplane) if ln[12].startswith("POST ")]
            and access_log_lines(dataplane)
        )
    )
    served = [line for line in lines if line[12].startswith("GET ") and "/healthz" in line[12]]
    assert {line[4] for line in served[-6:]} == set(pods)  # round robin over both targets
    assert all(line[8] == line[9] == "200" for line in served[-6:])
    assert (lines[-2][8], lines[-2][4] in pods) == ("404", True)  # the service's own 404, forwarded
    assert (lines[-3][8], lines[-3][4]) == ("404", "-")  # the listener's fixed response
    assert int(lines[-1][10]) > 0  # received bytes of the POST


def test_deleting_a_pod_under_steady_load_fails_no_request(
    cluster: Cluster, elb: Any, dataplane: DataPlaneProcess, deployed: Path
) -> None:
    victim = sorted(ready_pods(cluster).values(), key=lambda p: p["metadata"]["name"])[0]
    with SteadyLoad(dataplane.url) as load:
        time.sleep(3)
        cluster.kubectl("delete", "pod", victim["metadata"]["name"], "--wait=false")
    assert len(load.statuses) + len(load.errors) == LOAD_RATE * LOAD_SECONDS
    assert load.failures() == []
    assert f"{victim['status']['podIP']}:8080" not in registered(elb)
    assert poll(lambda: settled(cluster, elb, dataplane), within=60)


def test_sigkill_of_a_pod_under_steady_load_fails_no_request(
    cluster: Cluster, elb: Any, dataplane: DataPlaneProcess, deployed: Path
) -> None:
    assert poll(lambda: settled(cluster, elb, dataplane), within=60)
    victim = sorted(ready_pods(cluster).values(), key=lambda p: p["metadata"]["name"])[0]
    pid = int(victim["status"]["containerStatuses"][0]["containerID"].removeprefix("process://"))
    with SteadyLoad(dataplane.url) as load:
        time.sleep(3)
        os.kill(pid, signal.SIGKILL)
    assert len(load.statuses) + len(load.errors) == LOAD_RATE * LOAD_SECONDS
    assert load.failures() == []
    assert poll(lambda: settled(cluster, elb, dataplane), within=60)


def test_a_pod_failing_its_readiness_probe_stops_receiving_traffic(
    cluster: Cluster, elb: Any, dataplane: DataPlaneProcess, deployed: Path
) -> None:
    pods = poll(lambda: settled(cluster, elb, dataplane), within=60)
    assert pods
    unready, ready = sorted(pods)
    name = ready_pods(cluster)[unready]["metadata"]["name"]
    marker = deployed / f"{name}.down"
    marker.touch()
    try:
        assert poll(lambda: registered(elb) == {ready}, within=30), registered(elb)
        time.sleep(1.5)  # the data plane reads the emulator every 0.5 s
        before = len(access_log_lines(dataplane))
        with httpx.Client(timeout=10, trust_env=False) as client:
            statuses = [client.get(f"{dataplane.url}/healthz").status_code for _ in range(10)]
        assert statuses == [200] * 10
        assert poll(lambda: len(access_log_lines(dataplane)) >= before + 10)
        targets = {line[4] for line in access_log_lines(dataplane)[before:]}
        assert targets == {ready}
    finally:
        marker.unlink()
    assert poll(lambda: settled(cluster, elb, dataplane) == pods, within=30)


def test_deleting_the_ingress_removes_the_alb(cluster: Cluster, elb: Any, deployed: Path) -> None:
    lb = our_load_balancer(elb)
    assert lb is not None
    groups = elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])["TargetGroups"]
    cluster.kubectl("delete", "ingress", "payment", "--timeout=30s")
    assert our_load_balancer(elb) is None
    remaining = {g["TargetGroupArn"] for g in elb.describe_target_groups()["TargetGroups"]}
    assert not remaining & {g["TargetGroupArn"] for g in groups}


# -- the ELBv2 sync alone, against the emulator


def test_a_second_sync_of_unchanged_state_makes_no_write_call(aws_env: dict[str, str], elb: Any) -> None:
    ingress = {
        "metadata": {"name": "web", "namespace": "idem", "annotations": {}},
        "spec": {
            "ingressClassName": "alb",
            "rules": [
                {
                    "host": "shop.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    }
    service = {"metadata": {"name": "web", "namespace": "idem"}, "spec": {"ports": [{"port": 80}]}}
    (spec,) = plan("idem", [ingress], [service], [], []).load_balancers
    state = ElbV2State(aws_env["AWS_ENDPOINT_URL"], "idem")
    calls: list[str] = []
    state.elb.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
    try:
        dns = state.sync(spec)
        assert "CreateLoadBalancer" in calls
        calls.clear()
        assert state.sync(spec) == dns
        assert calls, "the second pass read nothing"
        assert [c for c in calls if not c.startswith("Describe")] == []
    finally:
        state.delete(spec.stack)
    assert spec.stack not in state.stacks()


# -- the data plane alone, in front of a target this test controls


class _Upstream(BaseHTTPRequestHandler):
    healthy = True
    release = threading.Event()  # ends `/stall` and `/trickle`

    def do_GET(self) -> None:
        if self.path == "/trickle":  # the answer's head and a tenth of its body, the rest once released
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            _Upstream.release.wait(30)
            self.wfile.write(b"x" * 90)
            return
        if self.path == "/health":
            status = 200 if _Upstream.healthy else 500
        else:
            if self.path == "/slow":
                time.sleep(2)
            if self.path == "/stall":
                _Upstream.release.wait(30)
            status = 200
        body = f"{self.path} from upstream".encode()
        if self.path == "/whoami":
            body = (self.headers.get("Cookie") or "nobody").encode()
        self.send_response(status)
        if self.path == "/login":
            self.send_header("Set-Cookie", "session_id=first-shopper; Path=/")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    """An HTTP server on an address of this module's range that no pod gets (pods take the low half
    from .0.1 up): `/slow` answers after 2 s, `/health` as `_Upstream.healthy` says."""
    address = "127.131.127.250"
    server = ThreadingHTTPServer((address, 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Upstream.healthy = True
    _Upstream.release.clear()
    try:
        yield address, int(server.server_address[1])
    finally:
        _Upstream.release.set()
        server.shutdown()
        server.server_close()


@dataclass
class DirectAlb:
    """An ALB made through the ELBv2 API alone, forwarding to the test's upstream."""

    client: httpx.Client  # sends the ALB's Host: several ALBs share the data plane's port
    group_arn: str
    target: list[dict[str, Any]]


@pytest.fixture
def direct_alb(
    elb: Any, aws_env: dict[str, str], dataplane: DataPlaneProcess, upstream: tuple[str, int]
) -> Iterator[DirectAlb]:
    ec2 = boto3.client(
        "ec2",
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        region_name=aws_env["AWS_DEFAULT_REGION"],
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
    )
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s.get("DefaultForAz")][:2]
    lb = elb.create_load_balancer(Name="direct-test", Subnets=subnets, Type="application")["LoadBalancers"][0]
    group = elb.create_target_group(
        Name="direct-test",
        Protocol="HTTP",
        Port=upstream[1],
        VpcId=lb["VpcId"],
        TargetType="ip",
        HealthCheckPath="/health",
        HealthCheckIntervalSeconds=5,
        HealthCheckTimeoutSeconds=2,
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=2,
    )["TargetGroups"][0]
    forward = [{"Type": "forward", "TargetGroupArn": group["TargetGroupArn"]}]
    listener = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80, DefaultActions=forward
    )["Listeners"][0]
    target = [{"Id": upstream[0], "Port": upstream[1]}]
    elb.register_targets(TargetGroupArn=group["TargetGroupArn"], Targets=target)
    client = httpx.Client(
        base_url=dataplane.url, timeout=10, trust_env=False, headers={"Host": lb["DNSName"]}
    )
    try:
        assert poll(lambda: client.get("/x").status_code == 200), client.get("/x")
        yield DirectAlb(client, group["TargetGroupArn"], target)
    finally:
        client.close()
        elb.delete_listener(ListenerArn=listener["ListenerArn"])
        elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        elb.delete_target_group(TargetGroupArn=group["TargetGroupArn"])


def test_draining_lets_in_flight_requests_finish_and_health_is_measured(
    elb: Any, dataplane: DataPlaneProcess, upstream: tuple[str, int], direct_alb: DirectAlb
) -> None:
    client, group_arn, target = direct_alb.client, direct_alb.group_arn, direct_alb.target

    def status(path: str = "/x") -> int:
        return client.get(path).status_code

    slow: list[httpx.Response] = []
    in_flight = threading.Thread(target=lambda: slow.append(client.get("/slow")))
    in_flight.start()
    time.sleep(0.5)
    elb.deregister_targets(TargetGroupArn=group_arn, Targets=target)
    assert poll(lambda: status() == 503, within=5)  # no new request goes to a deregistered target
    draining = httpx.get(f"{dataplane.admin}/targets", timeout=5).json()["draining"]
    assert in_flight.is_alive(), "the slow request ended before the target was drained"
    assert [(d["target"], d["inflight"]) for d in draining] == [(f"{upstream[0]}:{upstream[1]}", 1)]
    in_flight.join(10)
    assert [(r.status_code, r.text) for r in slow] == [(200, "/slow from upstream")]

    elb.register_targets(TargetGroupArn=group_arn, Targets=target)
    assert poll(lambda: status() == 200)
    _Upstream.healthy = False  # the emulator still says healthy: the data plane measures it

    def measured() -> str:
        groups = httpx.get(f"{dataplane.admin}/targets", timeout=5).json()["target_groups"]
        return str(next(iter(groups.values()))[0]["state"])

    assert poll(lambda: measured() == "unhealthy", within=10)
    health = elb.describe_target_health(TargetGroupArn=group_arn)
    assert health["TargetHealthDescriptions"][0]["TargetHealth"]["State"] == "healthy"
    # as an ALB fails open: with no healthy target in the group, the unhealthy ones still get requests
    assert status() == 200
    _Upstream.healthy = True
    assert poll(lambda: measured() == "healthy", within=10)


def test_a_cookie_a_target_sets_for_one_client_never_reaches_another(direct_alb: DirectAlb) -> None:
    first = direct_alb.client.get("/login")
    assert first.headers["set-cookie"].startswith("session_id=first-shopper")
    stranger = httpx.get(str(direct_alb.client.base_url.join("/whoami")), headers=direct_alb.client.headers)
    assert stranger.text == "nobody"


def test_what_a_draining_target_still_holds_after_the_deregistration_delay_is_dropped(
    elb: Any, dataplane: DataPlaneProcess, upstream: tuple[str, int], direct_alb: DirectAlb
) -> None:
    """A delay of 5 s (not scaled, unlike the health checks): `/slow` (2 s) finishes in it, `/stall` (not
    yet answered) and `/trickle` (answering) are still going when it ends."""
    elb.modify_target_group_attributes(
        TargetGroupArn=direct_alb.group_arn,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}],
    )
    time.sleep(1.5)  # the data plane reads the emulator every 0.5 s
    outcomes: dict[str, Any] = {}

    def fetch(path: str) -> None:
        try:
            outcomes[path] = direct_alb.client.get(path, timeout=60).status_code
        except httpx.HTTPError as err:
            outcomes[path] = type(err).__name__

    requests = [threading.Thread(target=fetch, args=(path,)) for path in ("/slow", "/stall", "/trickle")]
    for request in requests:
        request.start()
    target = f"{upstream[0]}:{upstream[1]}"

    def inflight() -> int:
        groups = httpx.get(f"{dataplane.admin}/targets", timeout=5).json()["target_groups"]
        return sum(t["inflight"] for ts in groups.values() for t in ts if t["target"] == target)

    assert poll(lambda: inflight() == 3, within=5)
    elb.deregister_targets(TargetGroupArn=direct_alb.group_arn, Targets=direct_alb.target)
    assert poll(lambda: direct_alb.client.get("/x").status_code == 503, within=5)  # nothing new on it
    requests[0].join(10)
    assert outcomes == {"/slow": 200}  # finished within the delay; the others still going
    (draining,) = httpx.get(f"{dataplane.admin}/targets", timeout=5).json()["draining"]
    assert (draining["target"], draining["inflight"]) == (target, 2)
    assert 0 < draining["seconds_left"] <= 5
    for request in requests[1:]:
        request.join(20)  # well before the upstream would answer (30 s)
    assert outcomes == {"/slow": 200, "/stall": 502, "/trickle": "RemoteProtocolError"}
    assert httpx.get(f"{dataplane.admin}/targets", timeout=5).json()["draining"] == []
    assert not _Upstream.release.is_set()

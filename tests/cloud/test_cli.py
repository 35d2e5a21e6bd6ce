"""`python -m sim up|status|down` with real component processes on free ports: `up` brings every
component up healthy and records it, a second `up` refuses, `down` leaves no process and no listening port
(also after a component was SIGKILLed, even the EKS binding with a pod running), and a component that
fails makes `up` stop what it started; the `sim` fixture gives the whole cloud.

`up` runs in-process with the table limited to the components whose programs exist here (the EKS binding
and ALB data plane are built beside this supervisor); `status` and `down` run as the real CLI.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from rich.console import Console

from containers.nodestore.__main__ import default_store
from sim.aws import client_env
from sim.pytest_plugin import LocalCloud
from sim.supervisor.cloud import COMPONENTS, CloudConfig, Component, Supervisor
from sim.supervisor.process import free_port, http_ok, tcp_open
from sim.supervisor.state import alive, marked_processes, read_state
from tests.k8s.conftest import Kubectl, kubectl_binary
from tests.support.cluster import get_json, poll

HOST = "127.0.0.1"
CLI_TIMEOUT = 90
#: the EKS clusters of this module take 127.190.0.0/16 and up
ADDRESS_BLOCKS = "190-191"
#: `up`'s other listening ports, on free ports: only the one a test names may be in use
OTHER_PORTS_FREE = ("--alb-port", "0", "--telemetry-port", "0", "--prometheus-port", "0")
AVAILABLE = tuple(c for c in COMPONENTS if c.missing() is None)


def sim_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def free_config(state_dir: Path) -> CloudConfig:
    ports = {name: free_port(HOST) for name in ("aws_port", "eks_port", "alb_port", "alb_admin_port")}
    ports |= {name: free_port(HOST) for name in ("telemetry_port", "prometheus_port")}
    return CloudConfig(state_dir, **ports)


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[CloudConfig]:
    """A cloud of the available components, up; `down` at the end whatever the test did."""
    config = free_config(tmp_path / "state")
    assert Supervisor(config, AVAILABLE).up() == 0
    try:
        yield config
    finally:
        sim_cli("down", "--state-dir", str(config.state_dir))


def recording(output: io.StringIO) -> Console:
    return Console(file=output, width=300, soft_wrap=True)


def assert_all_gone(config: CloudConfig, pids: list[int], ports: list[int]) -> None:
    assert [pid for pid in pids if alive(pid)] == []
    assert [port for port in ports if tcp_open(HOST, port)] == []
    assert not (config.state_dir / "cloud.json").exists()


def test_up_records_every_component_healthy_and_status_reports_it(cloud: CloudConfig) -> None:
    state = read_state(cloud.state_dir)
    assert state is not None
    assert [c.name for c in state.components] == [c.name for c in AVAILABLE]
    for record in state.components:
        assert record.state == "started"
        assert record.pid is not None
        assert alive(record.pid, record.start_time)
        assert http_ok(record.health_url), record
    aws = next(c for c in state.components if c.name == "aws")
    assert aws.address == f"http://{HOST}:{cloud.aws_port}"

    status = sim_cli("status", "--state-dir", str(cloud.state_dir))
    assert status.returncode == 0, status.stdout
    for component in AVAILABLE:
        line = next(line for line in status.stdout.splitlines() if f" {component.name} " in line)
        assert line.split("│")[3].strip() == "healthy", status.stdout


def test_a_second_up_refuses_in_one_line(cloud: CloudConfig) -> None:
    second = sim_cli("up", "--state-dir", str(cloud.state_dir), "--aws-port", str(free_port(HOST)))
    assert second.returncode != 0
    assert "already runs" in second.stdout
    assert len(second.stdout.strip().splitlines()) == 1, second.stdout
    assert sim_cli("status", "--state-dir", str(cloud.state_dir)).returncode == 0


def test_down_stops_everything_also_after_one_part_was_sigkilled(cloud: CloudConfig) -> None:
    state = read_state(cloud.state_dir)
    assert state is not None
    pids = [c.pid for c in state.components if c.pid is not None]
    ports = [p for c in state.components for p in c.ports]
    telemetry = next(c for c in state.components if c.name == "telemetry")
    assert telemetry.pid is not None
    os.killpg(telemetry.pid, signal.SIGKILL)

    status = sim_cli("status", "--state-dir", str(cloud.state_dir))
    assert status.returncode == 1
    assert "dead" in next(line for line in status.stdout.splitlines() if " telemetry " in line)

    down = sim_cli("down", "--state-dir", str(cloud.state_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    assert_all_gone(cloud, pids, ports)
    assert sim_cli("status", "--state-dir", str(cloud.state_dir)).returncode == 3
    again = sim_cli("down", "--state-dir", str(cloud.state_dir))
    assert again.returncode == 0
    assert "nothing to stop" in again.stdout


@pytest.mark.parametrize("command", ["up", "status", "down"])
def test_a_state_dir_that_is_a_file_is_refused_in_one_line_and_left_as_it_was(
    tmp_path: Path, command: str
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    cases = ((a_file, "is a file, not a directory"), (a_file / "sim", f"cannot be made: {a_file} is a file"))
    for state_dir, why in cases:
        refused = sim_cli(command, "--state-dir", str(state_dir))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr == f"python -m sim {command}: the state dir {state_dir} {why}\n"
        assert a_file.read_text() == "mine\n"
    assert sorted(tmp_path.iterdir()) == [a_file]


def test_a_port_in_use_stops_up_before_it_starts_anything(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    port = free_port(HOST)
    with socket.create_server((HOST, port)):
        refused = sim_cli("up", "--state-dir", str(state_dir), "--aws-port", str(port), *OTHER_PORTS_FREE)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"up failed: aws: port {port} is already in use on {HOST}" in refused.stdout
    assert not (state_dir / "cloud.json").exists()
    assert not list(marked_processes(state_dir))


def test_a_component_that_fails_stops_what_up_started(tmp_path: Path) -> None:
    config = free_config(tmp_path / "state")
    broken = Component(
        "broken",
        lambda c: [sys.executable, "-c", "import sys; print('no config'); sys.exit(3)"],
        lambda c: [],
        lambda c: f"http://{HOST}:{c.eks_port}/healthz",
        lambda c: "",
        needs=("aws",),
    )
    aws = next(c for c in COMPONENTS if c.name == "aws")
    output = io.StringIO()
    assert Supervisor(config, (aws, broken), recording(output)).up() == 1
    failure = next(line for line in output.getvalue().splitlines() if "up failed" in line)
    assert "broken exited with 3" in failure
    assert str(config.logs / "broken.log") in failure
    assert not tcp_open(HOST, config.aws_port)
    assert not (config.state_dir / "cloud.json").exists()


def test_a_missing_program_is_reported_and_the_rest_runs(tmp_path: Path) -> None:
    config = free_config(tmp_path / "state")
    telemetry = next(c for c in COMPONENTS if c.name == "telemetry")
    absent = replace(telemetry, name="absent", missing=lambda: "`python -m sim.absent` does not exist yet")
    output = io.StringIO()
    try:
        assert Supervisor(config, (telemetry, absent), recording(output)).up() == 1
        lines = output.getvalue().splitlines()
        assert "absent failed: `python -m sim.absent` does not exist yet; the rest runs" in lines
        assert http_ok(f"http://{HOST}:{config.telemetry_port}/healthz")
        assert sim_cli("status", "--state-dir", str(config.state_dir)).returncode == 1
    finally:
        assert sim_cli("down", "--state-dir", str(config.state_dir)).returncode == 0
    assert not tcp_open(HOST, config.telemetry_port)


def test_the_sim_fixture_gives_the_whole_running_cloud(sim: LocalCloud) -> None:
    assert http_ok(f"{sim.aws}/moto-api/")
    assert http_ok(f"{sim.eks}/healthz")
    assert http_ok(f"{sim.telemetry}/healthz")
    assert sim.eks_clusters == sim.state_dir / "eks" / "clusters.json"
    assert sim.aws_env["AWS_ENDPOINT_URL"] == sim.aws
    status = sim_cli("status", "--state-dir", str(sim.state_dir))
    assert status.returncode == 0, status.stdout


def test_a_sigkilled_eks_binding_leaves_no_pod_and_down_still_cleans_up(tmp_path: Path) -> None:
    """A pod's process has its own session, so killing the EKS binding's group does not reach it: the
    kubelet's lifeline (sim/supervisor/lifeline.py) does, and `down` then finds nothing left."""
    binary = kubectl_binary()
    if binary is None:
        pytest.skip("no kubectl binary on this machine")
    aws, eks = (next(c for c in COMPONENTS if c.name == name) for name in ("aws", "eks"))
    eks_command = eks.command
    if eks.missing() is not None:
        pytest.skip(str(eks.missing()))
    eks = replace(eks, command=lambda c: [*eks_command(c), "--address-blocks", ADDRESS_BLOCKS])
    config = free_config(tmp_path / "state")
    assert Supervisor(config, (aws, eks), recording(io.StringIO())).up() == 0
    try:
        create_eks_cluster(client_env(config.aws_endpoint))
        kubeconfig = config.state_dir / "eks" / "kubeconfig" / "shop"
        assert poll(kubeconfig.exists, within=30)
        kubectl = Kubectl(binary, kubeconfig)
        assert poll(lambda: "Ready" in kubectl("get", "nodes"), within=30)
        kubectl("apply", "-f", "-", input=json.dumps(COLLECTOR_CONFIG))
        probe = {"tcpSocket": {"port": 4318}, "periodSeconds": 1}
        container = {
            "name": "app",
            "image": "otel/opentelemetry-collector:0.111.0",
            "args": ["--config=/conf/config.yaml"],
            "readinessProbe": probe,
            "volumeMounts": [{"name": "conf", "mountPath": "/conf"}],
        }
        volume = {"name": "conf", "configMap": {"name": "collector"}}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "collector", "namespace": "default"}}
        spec = {"containers": [container], "volumes": [volume]}
        kubectl("apply", "-f", "-", input=json.dumps({**pod, "spec": spec}))
        kubectl("wait", "--for=condition=Ready", "pod/collector", "--timeout=60s")
        status = get_json(kubectl, "pod", "collector")["status"]
        pod_pid = int(status["containerStatuses"][0]["containerID"].removeprefix("process://"))
        state = read_state(config.state_dir)
        assert state is not None
        eks_pid = next(c.pid for c in state.components if c.name == "eks")
        assert eks_pid is not None
        os.killpg(eks_pid, signal.SIGKILL)
        assert poll(lambda: not alive(eks_pid), within=10)
        assert poll(lambda: not alive(pod_pid), within=10), "the pod outlived its SIGKILLed node"
    finally:
        down = sim_cli("down", "--state-dir", str(config.state_dir))
    assert down.returncode == 0, down.stdout + down.stderr
    assert not alive(pod_pid)
    assert not tcp_open(status["podIP"], 4318)


#: the smallest configuration a collector runs: OTLP/HTTP in, the debug exporter out
COLLECTOR_CONFIG = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "collector", "namespace": "default"},
    "data": {
        "config.yaml": (
            "receivers: {otlp: {protocols: {http: {endpoint: '0.0.0.0:4318'}}}}\n"
            "exporters: {debug: {}}\n"
            "service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n"
        )
    },
}


def create_eks_cluster(env: dict[str, str]) -> None:
    """Through boto3 alone: a VPC, a subnet, an EKS cluster `shop` and a node group of one t3.medium."""
    session = boto3.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    endpoint = env["AWS_ENDPOINT_URL"]
    ec2, iam, eks = (session.client(s, endpoint_url=endpoint) for s in ("ec2", "iam", "eks"))
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")
    subnets = [subnet["Subnet"]["SubnetId"]]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName="shop-eks", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    eks.create_cluster(name="shop", version="1.30", roleArn=role, resourcesVpcConfig={"subnetIds": subnets})
    eks.create_nodegroup(
        clusterName="shop",
        nodegroupName="workers",
        nodeRole=role,
        subnets=subnets,
        instanceTypes=["t3.medium"],
        scalingConfig={"minSize": 1, "maxSize": 2, "desiredSize": 1},
    )


def test_the_eks_nodes_use_the_image_store_that_sim_images_loads_into(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOPSTACK_IMAGE_STORE", raising=False)
    eks = next(c for c in COMPONENTS if c.name == "eks")
    argv = eks.command(CloudConfig(Path(".sim")))
    # absolute: the binding and its kubelets run in other directories
    assert argv[argv.index("--image-store") + 1] == str(Path(".sim/images").absolute())
    assert Path(argv[argv.index("--image-store") + 1]) == default_store().absolute()
    monkeypatch.setenv("SHOPSTACK_IMAGE_STORE", str(tmp_path / "images"))
    argv = eks.command(CloudConfig(Path(".sim")))
    assert argv[argv.index("--image-store") + 1] == str(tmp_path / "images")

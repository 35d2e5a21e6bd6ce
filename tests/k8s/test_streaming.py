"""`kubectl exec` and `kubectl port-forward` into a pod of the local cluster, with the real kubectl 1.30 as
it comes (exec over WebSockets, port-forward over a SPDY upgrade; exec over SPDY when WebSockets are turned
off), kubectl 1.31's port-forward (SPDY tunnelled in a WebSocket), exec and port-forward from the Python
client, and `kubectl logs -f` and `kubectl top`; with no environment variable but where one picks exec's
SPDY fallback.

One pod with two containers of the payment image: `app` (the service, on 8080) and `sidecar` (a sleeper).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import websocket
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.stream import portforward, stream

from containers.nodestore import ImageStore
from sim.supervisor.process import free_port
from tests.conftest import BuiltImage
from tests.support.cluster import Cluster, get_json, payment_container, poll, start_cluster
from tests.support.signals import interruptible

POD_CIDR = "127.111.0.0/16"
POD = "shop"
FORWARD_SECONDS = 20.0


def _shop_pod(image: str) -> str:
    app = payment_container(image)
    app["env"].append({"name": "ROLE", "value": "app"})
    sidecar = {
        "name": "sidecar",
        "image": image,
        "command": ["python", "-c", "import time; time.sleep(3600)"],
        "env": [{"name": "ROLE", "value": "sidecar"}],
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": POD, "namespace": "default", "labels": {"app": POD}},
            "spec": {"terminationGracePeriodSeconds": 2, "containers": [app, sidecar]},
        }
    )


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, image_store: ImageStore, payment_image: BuiltImage
) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("streaming"), image_store, POD_CIDR)
    try:
        running.kubectl("apply", "-f", "-", input=_shop_pod(payment_image.reference))
        running.kubectl("wait", "--for=condition=Ready", f"pod/{POD}", "--timeout=60s")
        yield running
    finally:
        running.process.stop(grace=10)


def _exec(cluster: Cluster, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl.run("exec", *args, input=input, check=False)


def _container_pid(cluster: Cluster, name: str) -> int:
    pod = get_json(cluster.kubectl, "pod", POD)
    status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == name)
    return int(status["containerID"].removeprefix("process://"))


def _pids_running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline and b"kubectl" not in cmdline:
                found.append(int(entry.name))
    return found


# -- exec with kubectl


def test_exec_prints_output_in_the_containers_env_and_working_dir(cluster: Cluster) -> None:
    script = "import os; print('hi'); print(os.environ['PORT'], os.environ['ROLE']); print(os.getcwd())"
    result = _exec(cluster, POD, "-c", "app", "--", "python", "-c", script)
    assert result.returncode == 0, result.stderr
    hi, env, cwd = result.stdout.splitlines()
    assert hi == "hi"
    assert env == "8080 app"
    assert cwd == os.readlink(f"/proc/{_container_pid(cluster, 'app')}/cwd")


def test_exec_reports_the_exit_code_and_keeps_stderr_apart(cluster: Cluster) -> None:
    script = "import sys; print('out'); sys.stderr.write('oops\\n'); sys.exit(3)"
    result = _exec(cluster, POD, "-c", "app", "--", "python", "-c", script)
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert "oops" in result.stderr
    assert "command terminated with exit code 3" in result.stderr


def test_exec_output_arrives_whole(cluster: Cluster) -> None:
    script = "import sys; sys.stdout.write('x' * 3_000_000); sys.stderr.write('y' * 100_000)"
    result = _exec(cluster, POD, "-c", "app", "--", "python", "-c", script)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout == "x" * 3_000_000
    assert result.stderr == "y" * 100_000


def test_exec_with_stdin(cluster: Cluster) -> None:
    script = "import sys; print(sys.stdin.read().upper())"
    result = _exec(cluster, "-i", POD, "-c", "app", "--", "python", "-c", script, input="hello\nworld")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "HELLO\nWORLD\n"


def test_exec_picks_the_container_named_and_defaults_to_the_first(cluster: Cluster) -> None:
    script = "import os; print(os.environ['ROLE'])"
    assert _exec(cluster, POD, "-c", "sidecar", "--", "python", "-c", script).stdout == "sidecar\n"
    defaulted = _exec(cluster, POD, "--", "python", "-c", script)
    assert defaulted.stdout == "app\n"
    assert 'Defaulted container "app"' in defaulted.stderr


def test_exec_into_an_unknown_container_or_a_pod_not_running_is_refused(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    unknown = _exec(cluster, POD, "-c", "nope", "--", "python", "-c", "print(1)")
    assert unknown.returncode == 1
    assert "container nope is not valid for pod shop" in unknown.stderr
    missing = _exec(cluster, "no-such-pod", "--", "python", "-c", "print(1)")
    assert missing.returncode == 1
    assert 'pods "no-such-pod" not found' in missing.stderr
    pending = payment_container(payment_image.reference, requests={"memory": "64Gi"})
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pending"},
        "spec": {"containers": [pending]},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    try:
        refused = _exec(cluster, "pending", "--", "python", "-c", "print(1)")
        assert refused.returncode == 1
        assert "pod pending does not have a host assigned" in refused.stderr
    finally:
        cluster.kubectl("delete", "pod", "pending", "--timeout=30s")


def _exec_over_spdy(
    cluster: Cluster, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """kubectl exec with its WebSocket transport turned off: its SPDY fallback."""
    env = {**os.environ, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
    argv = ["--kubeconfig", str(cluster.kubectl.kubeconfig), "exec", *args]
    return subprocess.run(
        [cluster.kubectl.binary, *argv],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_exec_over_spdy_streams_output_stdin_and_the_exit_code(cluster: Cluster) -> None:
    script = "import sys; print(sys.stdin.read().upper()); sys.stderr.write('oops\\n'); sys.exit(4)"
    result = _exec_over_spdy(cluster, "-i", POD, "-c", "app", "--", "python", "-c", script, input="spdy")
    assert result.returncode == 4, result.stderr
    assert result.stdout == "SPDY\n"
    assert "oops" in result.stderr
    assert "command terminated with exit code 4" in result.stderr
    big = _exec_over_spdy(cluster, POD, "-c", "app", "--", "python", "-c", "print('x' * 1_000_000)")
    assert big.returncode == 0, big.stderr
    assert big.stdout == "x" * 1_000_000 + "\n"


def test_exec_over_spdy_is_refused_with_the_api_servers_reason(cluster: Cluster) -> None:
    unknown = _exec_over_spdy(cluster, POD, "-c", "nope", "--", "true")
    assert unknown.returncode == 1
    assert "container nope is not valid for pod shop" in unknown.stderr
    missing = _exec_over_spdy(cluster, "no-such-pod", "--", "true")
    assert missing.returncode == 1
    assert 'pods "no-such-pod" not found' in missing.stderr


def test_the_exec_process_is_killed_when_the_client_goes_away(cluster: Cluster) -> None:
    marker = f"time.sleep({time.monotonic_ns() % 1000 + 3000})"
    argv = ["--kubeconfig", str(cluster.kubectl.kubeconfig), "exec", POD, "-c", "app", "--", "python", "-c"]
    exec_ = subprocess.Popen(
        [cluster.kubectl.binary, *argv, f"import time; {marker}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        started = poll(lambda: _pids_running(marker), within=20)
        assert started, "the exec'd command never started"
    finally:
        exec_.kill()
        exec_.wait(timeout=10)
    assert poll(lambda: not _pids_running(marker), within=10), "the exec'd command outlived its client"


# -- exec with the Python client


def _core_api(cluster: Cluster) -> k8s_client.CoreV1Api:
    configuration = k8s_client.Configuration()
    k8s_config.load_kube_config(str(cluster.kubectl.kubeconfig), client_configuration=configuration)
    return k8s_client.CoreV1Api(k8s_client.ApiClient(configuration))


def test_python_client_stream_returns_the_output(cluster: Cluster) -> None:
    api = _core_api(cluster)
    output = stream(
        api.connect_get_namespaced_pod_exec,
        POD,
        "default",
        container="app",
        command=["python", "-c", "import os; print('hi', os.environ['ROLE'])"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _request_timeout=20,
    )
    assert output == "hi app\n"


def test_python_client_sees_the_exit_code_and_a_tty(cluster: Cluster) -> None:
    api = _core_api(cluster)
    ws = stream(
        api.connect_get_namespaced_pod_exec,
        POD,
        "default",
        container="app",
        command=["python", "-c", "import sys; print(sys.stdout.isatty()); sys.exit(5)"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=True,
        _preload_content=False,
    )
    try:
        ws.run_forever(timeout=20)
        assert ws.returncode == 5
        assert ws.read_stdout() == "True\r\n"
    finally:
        ws.close()


def test_python_client_portforward_reaches_the_pod(cluster: Cluster) -> None:
    api = _core_api(cluster)
    forward = portforward(api.connect_get_namespaced_pod_portforward, POD, "default", ports="8080")
    sock = forward.socket(8080)
    sock.settimeout(10)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert forward.error(8080) is None


# -- the channel protocol on the wire (v4, as older clients speak it)


def _exec_url(cluster: Cluster, pod: str, container: str, *command: str) -> str:
    query = urlencode([("container", container), *(("command", c) for c in command), ("stdout", "true")])
    return f"{cluster.url.replace('http://', 'ws://')}/api/v1/namespaces/default/pods/{pod}/exec?{query}"


def test_v4_exec_sends_output_then_a_non_zero_exit_status(cluster: Cluster) -> None:
    url = _exec_url(cluster, POD, "app", "python", "-c", "print('hi'); raise SystemExit(7)")
    ws = websocket.create_connection(url, subprotocols=["v4.channel.k8s.io"], timeout=20)
    received: dict[int, bytes] = {}
    try:
        assert ws.subprotocol == "v4.channel.k8s.io"
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            received[data[0]] = received.get(data[0], b"") + data[1:]
    finally:
        ws.close()
    assert received[1] == b"hi\n"
    assert json.loads(received[3]) == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: exit status 7",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "7"}]},
    }


@pytest.mark.parametrize(
    ("pod", "container", "code", "message"),
    [
        ("no-such-pod", "app", 404, 'pods "no-such-pod" not found'),
        (POD, "nope", 400, "container nope is not valid for pod shop"),
    ],
)
def test_a_refused_handshake_answers_with_a_status(
    cluster: Cluster, pod: str, container: str, code: int, message: str
) -> None:
    url = _exec_url(cluster, pod, container, "true")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, subprotocols=["v5.channel.k8s.io"], timeout=20)
    assert refused.value.status_code == code
    status = json.loads(refused.value.resp_body or b"{}")
    assert (status["kind"], status["code"], status["message"]) == ("Status", code, message)


# -- the SPDY upgrade on the wire


def _spdy_upgrade(cluster: Cluster, path: str, protocol: str) -> tuple[int, dict[str, str], bytes]:
    """A SPDY upgrade request as kubectl sends it, on a fresh connection: the answer's status, headers and
    body (none after a 101)."""
    address = urlsplit(cluster.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            f"X-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        if status_line.split()[1] != "101":
            while len(body) < int(headers.get("content-length", 0)) and (chunk := sock.recv(65536)):
                body += chunk
        return int(status_line.split()[1]), headers, body


def test_a_spdy_upgrade_switches_protocols(cluster: Cluster) -> None:
    path = f"/api/v1/namespaces/default/pods/{POD}/portforward"
    code, headers, _ = _spdy_upgrade(cluster, path, "portforward.k8s.io")
    assert code == 101
    assert headers["upgrade"] == "SPDY/3.1"
    assert headers["x-stream-protocol-version"] == "portforward.k8s.io"


@pytest.mark.parametrize(
    ("path", "protocol", "code", "message"),
    [
        ("/api/v1/namespaces/default/pods/no-such-pod/portforward", "portforward.k8s.io", 404, "not found"),
        (f"/api/v1/namespaces/default/pods/{POD}/portforward", "portforward.k8s.io.v2", 403, "negotiate"),
        (
            f"/api/v1/namespaces/default/pods/{POD}/exec?command=true&container=nope",
            "v4.channel.k8s.io",
            400,
            "nope",
        ),
        (f"/api/v1/namespaces/default/pods/{POD}/attach", "v4.channel.k8s.io", 404, "could not find"),
    ],
)
def test_a_refused_spdy_upgrade_answers_with_a_status(
    cluster: Cluster, path: str, protocol: str, code: int, message: str
) -> None:
    answered, headers, body = _spdy_upgrade(cluster, path, protocol)
    assert answered == code
    assert headers["content-type"] == "application/json"
    status = json.loads(body)
    assert (status["kind"], status["code"]) == ("Status", code)
    assert message in status["message"]


def test_port_forward_without_an_upgrade_is_refused(cluster: Cluster) -> None:
    with httpx.Client(timeout=10, trust_env=False) as client:
        answer = client.post(f"{cluster.url}/api/v1/namespaces/default/pods/{POD}/portforward")
    assert answer.status_code == 400
    assert answer.json()["message"] == "Upgrade request required"


# -- port-forward with kubectl


def _port_forward(
    cluster: Cluster, target: str, ports: str, binary: str | None = None
) -> subprocess.Popen[str]:
    """kubectl port-forward as it comes (kubectl 1.30: a SPDY upgrade), in the background."""
    argv = ["--kubeconfig", str(cluster.kubectl.kubeconfig), "port-forward", target, ports]
    return subprocess.Popen(
        [binary or cluster.kubectl.binary, *argv, "--address", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGINT (as Ctrl-C), then its exit code and stderr; killed if it does not end in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=FORWARD_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate(timeout=5)
    return process.returncode, stderr


def _healthz(local: int) -> Any:
    with httpx.Client(timeout=10, trust_env=False) as client:
        response = client.get(f"http://127.0.0.1:{local}/healthz")
    return response.status_code


def _forwarding(process: subprocess.Popen[str], local: int) -> bool:
    assert process.stdout is not None
    deadline = time.monotonic() + FORWARD_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
        if f"Forwarding from 127.0.0.1:{local}" in line:
            return True
    return False


def _kubectl_1_31(cluster: Cluster) -> str:
    """kubectl 1.31 beside the 1.30 binary: its port-forward tunnels SPDY in a WebSocket by default."""
    found = Path(cluster.kubectl.binary).with_name("kubectl.1.31")
    if not found.exists():
        pytest.skip("no kubectl 1.31 beside kubectl 1.30")
    return str(found)


@pytest.mark.parametrize(
    ("target", "remote", "kubectl"),
    [(f"pod/{POD}", 8080, "1.30"), (f"svc/{POD}", 80, "1.30"), (f"pod/{POD}", 8080, "1.31")],
)
def test_port_forward_reaches_the_pod(cluster: Cluster, target: str, remote: int, kubectl: str) -> None:
    if target.startswith("svc/"):
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": POD, "namespace": "default"},
            "spec": {"selector": {"app": POD}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(service))
    local = free_port("127.0.0.1")
    binary = _kubectl_1_31(cluster) if kubectl == "1.31" else None
    forward = _port_forward(cluster, target, f"{local}:{remote}", binary)
    try:
        assert _forwarding(forward, local), _stop(forward)
        assert [_healthz(local) for _ in range(3)] == [200, 200, 200]
        with ThreadPoolExecutor(max_workers=5) as pool:
            assert list(pool.map(lambda _: _healthz(local), range(5))) == [200] * 5
    finally:
        code, stderr = _stop(forward)
    assert code == 0, stderr
    assert "error" not in stderr.lower(), stderr


ECHO = """
import os, socket, threading
def echo(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
server = socket.create_server((os.environ["BIND_HOST"], 9000))
while True:
    threading.Thread(target=echo, args=(server.accept()[0],), daemon=True).start()
"""


def test_port_forward_carries_megabytes_both_ways_and_the_half_close(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    container = {
        "name": "echo",
        "image": payment_image.reference,
        "command": ["python", "-c", ECHO],
        "readinessProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 1},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "echo", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/echo", "--timeout=60s")
    local = free_port("127.0.0.1")
    forward = _port_forward(cluster, "pod/echo", f"{local}:9000")
    sent = os.urandom(4 * 1024 * 1024)
    try:
        assert _forwarding(forward, local), _stop(forward)
        with socket.create_connection(("127.0.0.1", local), timeout=20) as sock:

            def send_all() -> None:
                sock.sendall(sent)
                sock.shutdown(socket.SHUT_WR)  # the pod reads its end, then closes: our end follows

            with ThreadPoolExecutor(max_workers=1) as pool:
                sending = pool.submit(send_all)
                received = bytearray()
                while chunk := sock.recv(1024 * 1024):
                    received += chunk
                sending.result()
    finally:
        code, stderr = _stop(forward)
        cluster.kubectl("delete", "pod", "echo", "--wait=false")
    assert len(received) == len(sent)
    assert received == sent
    assert code == 0, stderr


def test_port_forward_to_a_closed_port_reports_the_error(cluster: Cluster) -> None:
    local = free_port("127.0.0.1")
    forward = _port_forward(cluster, f"pod/{POD}", f"{local}:9")
    try:
        assert _forwarding(forward, local), _stop(forward)
        with pytest.raises(httpx.HTTPError):
            _healthz(local)
    finally:
        _, stderr = _stop(forward)
    assert "error forwarding port 9 to pod" in stderr


def test_port_forward_to_a_missing_pod_is_refused_with_the_api_servers_reason(cluster: Cluster) -> None:
    local = free_port("127.0.0.1")
    forward = _port_forward(cluster, "pod/no-such-pod", f"{local}:8080")
    try:
        forward.wait(timeout=FORWARD_SECONDS)
    finally:
        code, stderr = _stop(forward)
    assert code == 1
    assert 'pods "no-such-pod" not found' in stderr


# -- logs -f and top with kubectl

TICKER = """
import itertools, time
for i in itertools.count():
    print("tick", i, flush=True)
    time.sleep(0.1)
"""


def _start_ticker(cluster: Cluster, image: str, name: str) -> None:
    container = {"name": "app", "image": image, "command": ["python", "-c", TICKER]}
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")


def _ticks(process: subprocess.Popen[str], until: int) -> list[int]:
    """The tick numbers `kubectl logs -f` prints, up to `until`."""
    assert process.stdout is not None
    seen: list[int] = []
    while not seen or seen[-1] < until:
        line = process.stdout.readline()
        assert line, f"the log stream ended after {seen[-3:]}"
        seen.append(int(line.split()[1]))
    return seen


def test_logs_follow_prints_new_lines_and_ends_when_the_pod_is_deleted(
    cluster: Cluster, payment_image: BuiltImage
) -> None:
    _start_ticker(cluster, payment_image.reference, "ticker")
    follow = cluster.kubectl.popen("logs", "-f", "ticker")
    try:
        written = len(cluster.kubectl("logs", "ticker").splitlines())
        seen = _ticks(follow, written + 10)  # lines written after the follow began
        assert seen == list(range(len(seen)))
        cluster.kubectl("delete", "pod", "ticker", "--wait=false")
        _, stderr = follow.communicate(timeout=FORWARD_SECONDS)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, stderr


def test_logs_follow_from_the_tail_ends_when_interrupted(cluster: Cluster, payment_image: BuiltImage) -> None:
    _start_ticker(cluster, payment_image.reference, "ticker-2")
    try:
        written = poll(lambda: (n := len(cluster.kubectl("logs", "ticker-2").splitlines())) > 5 and n)
        assert written, "the ticker wrote no 6 lines"
        follow = cluster.kubectl.popen("logs", "-f", "--tail=1", "ticker-2")
        first, *_ = _ticks(follow, 0)
        assert first >= written - 1  # the last line written before the follow began, or a later one
        code, stderr = _stop(follow)
        assert code == -signal.SIGINT, stderr  # ended by Ctrl-C, not killed
    finally:
        cluster.kubectl("delete", "pod", "ticker-2", "--wait=false")


def test_top_shows_the_usage_of_pods_and_nodes(cluster: Cluster) -> None:
    def top_pod() -> list[str]:
        result = cluster.kubectl.run("top", "pod", POD, "--no-headers", check=False)
        return result.stdout.split() if result.returncode == 0 else []

    name, cpu, memory = poll(top_pod, within=30)
    assert name == POD
    assert cpu.endswith("m")
    assert int(memory.removesuffix("Mi")) > 0
    containers = cluster.kubectl("top", "pod", POD, "--containers", "--no-headers").splitlines()
    assert sorted(line.split()[1] for line in containers) == ["app", "sidecar"]
    (node,) = cluster.kubectl("top", "node", "--no-headers").splitlines()
    assert node.split()[0] == "node-1"

"""The proxy subresources `services/NAME[:PORT]/proxy/PATH` and `pods/NAME[:PORT]/proxy/PATH`.

In process first (the API server and a small backend on loopback, one event loop): what reaches the
backend and what comes back (method, path, query, body, headers, streaming, redirects) and how a Service
request picks its endpoint. Then with the real kubectl 1.30 against a local cluster running the payment
image: `get --raw` through a Service and a pod, a POST with a body, `kubectl proxy`, and the API server's
answers when there is nothing to reach (kube-apiserver's `Status` messages as kubectl prints them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from containers.nodestore import ImageStore
from sim.k8s import resources
from sim.k8s.app import KubeApp
from sim.k8s.store import Store
from sim.serving import serve
from sim.supervisor.process import free_port
from tests.conftest import BuiltImage
from tests.support.cluster import Cluster, get_json, payment_container, poll, start_cluster
from tests.support.shopper import VISA

pytestmark = pytest.mark.timeout(300)  # the first cluster test waits for the cluster and its pods
HOST = "127.0.0.1"
PODS = resources.by_key("pods")
SERVICES = resources.by_key("services")
ENDPOINTS = resources.by_key("endpoints")

# -- in process


class Backend:
    """Answers with what it received (method, path, query, headers, body) as JSON; `/stream` sends one
    chunk, then the next once `release` is set; `/moved` redirects to `/there` on itself."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
            await self.release.wait()
            await send({"type": "http.response.body", "body": b"second\n"})
            return
        if scope["path"] == "/moved":
            headers = [(b"location", b"/there?x=1"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 302, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        answer = json.dumps(
            {
                "method": scope["method"],
                "path": scope["raw_path"].decode(),
                "query": scope["query_string"].decode(),
                "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                "body": body.decode(),
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"x-backend", b"yes"),
            (b"content-length", str(len(answer)).encode()),
        ]
        await send({"type": "http.response.start", "status": 207, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


@dataclass
class Served:
    url: str
    store: Store
    backend: Backend
    backend_port: int


async def _listening(port: int, server: asyncio.Task[None]) -> None:
    for _ in range(500):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            return
        assert not server.done(), server
        await asyncio.sleep(0.01)
    raise AssertionError(f"nothing listens on {port}")


def _objects(store: Store, backend_port: int) -> None:
    """Pod `web` on 127.0.0.1 (the backend), Service `web` (port 80 -> the pod's `http` port), its
    Endpoints; Service `empty` with no endpoints at all, Service `unready` whose only pod is not ready."""
    store.create(
        PODS,
        {
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": backend_port}]}
                ]
            },
        },
        "default",
    )
    pod = store.get(PODS, "default", "web")
    pod["status"] = {"phase": "Running", "podIP": HOST, "podIPs": [{"ip": HOST}]}
    store.update(PODS, "default", "web", pod, subresource="status")
    for name in ("web", "empty", "unready"):
        spec = {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
        store.create(SERVICES, {"metadata": {"name": name}, "spec": spec}, "default")
    address = {"ip": HOST, "targetRef": {"kind": "Pod", "name": "web", "namespace": "default"}}
    ports = [{"name": "http", "port": backend_port, "protocol": "TCP"}]
    subsets = {
        "web": [{"addresses": [address], "ports": ports}],
        "empty": [],
        "unready": [{"notReadyAddresses": [address], "ports": ports}],
    }
    for name, subset in subsets.items():
        store.create(ENDPOINTS, {"metadata": {"name": name}, "subsets": subset}, "default")


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    backend = Backend()
    backend_port, api_port = free_port(HOST), free_port(HOST)
    store = Store()
    _objects(store, backend_port)
    stop = asyncio.Event()
    servers = [
        asyncio.create_task(serve(backend, HOST, backend_port, 1.0, stop.wait)),
        asyncio.create_task(serve(KubeApp(store), HOST, api_port, 1.0, stop.wait)),
    ]
    try:
        await _listening(backend_port, servers[0])
        await _listening(api_port, servers[1])
        yield Served(f"http://{HOST}:{api_port}", store, backend, backend_port)
    finally:
        backend.release.set()
        stop.set()
        await asyncio.gather(*servers)


def _client(served: Served) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=served.url, timeout=10, trust_env=False)


async def test_a_request_reaches_the_backend_as_sent(served: Served) -> None:
    async with _client(served) as client:
        answer = await client.put(
            "/api/v1/namespaces/default/services/web:80/proxy/a%2Fb/c/?q=1&q=2&x=%20",
            content=b"payload",
            headers={"authorization": "Bearer secret", "keep-alive": "timeout=5", "x-custom": "kept"},
        )
    assert answer.status_code == 207
    assert answer.headers["x-backend"] == "yes"
    seen = answer.json()
    assert (seen["method"], seen["path"], seen["query"], seen["body"]) == (
        "PUT",
        "/a%2Fb/c/",
        "q=1&q=2&x=%20",
        "payload",
    )
    headers = seen["headers"]
    assert headers["x-custom"] == "kept"
    assert "authorization" not in headers
    assert "keep-alive" not in headers
    assert headers["host"] == f"{HOST}:{served.backend_port}"
    assert headers["x-forwarded-uri"] == "/api/v1/namespaces/default/services/web:80/proxy/a%2Fb/c/"


async def test_every_method_and_a_streamed_body_go_through(served: Served) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # more than the proxy buffers: streamed on
        for part in (b"a", b"b", b"c"):
            yield part * 100_000

    async with _client(served) as client:
        base = "/api/v1/namespaces/default/pods/web/proxy/echo"
        for method in ("GET", "POST", "PATCH", "DELETE"):
            answer = await client.request(method, base)
            assert answer.json()["method"] == method
        head = await client.head(base)
        assert (head.status_code, head.content) == (207, b"")
        streamed = await client.post(base, content=chunks())
    assert streamed.json()["body"] == "a" * 100_000 + "b" * 100_000 + "c" * 100_000


async def test_the_answer_is_streamed_as_it_comes(served: Served) -> None:
    async with (
        _client(served) as client,
        client.stream("GET", "/api/v1/namespaces/default/services/web:http/proxy/stream") as answer,
    ):
        lines = answer.aiter_lines()
        assert await anext(lines) == "first"  # while the backend still holds the rest
        served.backend.release.set()
        assert await anext(lines) == "second"


async def test_no_path_redirects_and_a_backend_redirect_stays_behind_the_proxy(served: Served) -> None:
    base = "/api/v1/namespaces/default/services/web:80/proxy"
    async with _client(served) as client:
        bare = await client.get(base, params={"a": "b"})
        assert (bare.status_code, bare.headers["location"]) == (301, f"{base}/?a=b")
        moved = await client.get(f"{base}/moved")
    assert (moved.status_code, moved.headers["location"]) == (302, f"{base}/there?x=1")


@pytest.mark.parametrize(
    ("path", "code", "reason", "message"),
    [
        ("services/missing:80", 404, "NotFound", 'services "missing" not found'),
        ("services/missing", 404, "NotFound", 'endpoints "missing" not found'),
        ("services/web:81", 503, "ServiceUnavailable", 'no service port 81 found for service "web"'),
        ("services/empty:80", 503, "ServiceUnavailable", 'no endpoints available for service "empty"'),
        ("services/unready:80", 503, "ServiceUnavailable", 'no endpoints available for service "unready:80"'),
        ("services/web", 503, "ServiceUnavailable", 'no endpoints available for service "web"'),
        ("services/web:nope", 503, "ServiceUnavailable", 'no endpoints available for service "web:nope"'),
        ("services/ftp:web:80", 400, "BadRequest", 'invalid service request "ftp:web:80"'),
        ("pods/missing", 404, "NotFound", 'pods "missing" not found'),
        ("pods/web:a:b:c", 400, "BadRequest", 'invalid pod request "web:a:b:c"'),
    ],
)
async def test_what_cannot_be_reached_is_a_status(
    served: Served, path: str, code: int, reason: str, message: str
) -> None:
    async with _client(served) as client:
        answer = await client.get(f"/api/v1/namespaces/default/{path}/proxy/")
    assert answer.status_code == code
    status = answer.json()
    assert (status["kind"], status["code"], status["reason"], status["message"]) == (
        "Status",
        code,
        reason,
        message,
    )


async def test_a_pod_without_an_address_or_off_loopback_is_not_dialled(served: Served) -> None:
    pod = served.store.get(PODS, "default", "web")
    async with _client(served) as client:
        for ip in ("", "10.0.0.1"):
            pod["status"] = {"phase": "Running", "podIP": ip} if ip else {"phase": "Pending"}
            pod["metadata"].pop("resourceVersion")
            pod = served.store.update(PODS, "default", "web", pod, subresource="status")
            answer = await client.get("/api/v1/namespaces/default/pods/web/proxy/")
            assert (answer.status_code, answer.json()["message"]) == (400, "address not allowed")


async def test_a_backend_that_refuses_is_a_503(served: Served) -> None:
    closed = free_port(HOST)
    async with _client(served) as client:
        answer = await client.get(f"/api/v1/namespaces/default/pods/web:{closed}/proxy/")
    assert answer.status_code == 503
    assert answer.json()["message"] == (
        f"error trying to reach service: dial tcp {HOST}:{closed}: connect: connection refused"
    )


async def test_discovery_lists_the_proxy_subresources(served: Served) -> None:
    async with _client(served) as client:
        listed = (await client.get("/api/v1")).json()["resources"]
    proxies = {r["name"]: (r["kind"], r["verbs"]) for r in listed if r["name"].endswith("/proxy")}
    verbs = ["create", "delete", "get", "patch", "update"]
    assert proxies == {
        "pods/proxy": ("PodProxyOptions", verbs),
        "services/proxy": ("ServiceProxyOptions", verbs),
    }


# -- with kubectl and a cluster

POD_CIDR = "127.112.0.0/16"


def _pod(image: str, name: str, labels: dict[str, str], ready_path: str = "/healthz") -> str:
    container = payment_container(image)
    container["readinessProbe"]["httpGet"]["path"] = ready_path
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"terminationGracePeriodSeconds": 2, "containers": [container]},
        }
    )


def _service(name: str, app: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "selector": {"app": app},
                "ports": [{"name": "http", "port": 8080, "targetPort": "http"}],
            },
        }
    )


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, image_store: ImageStore, payment_image: BuiltImage
) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("proxy"), image_store, POD_CIDR)
    kubectl = running.kubectl
    try:
        kubectl("apply", "-f", "-", input=_pod(payment_image.reference, "pay", {"app": "pay"}))
        # never ready: its readiness probe asks for a path the service does not serve
        kubectl("apply", "-f", "-", input=_pod(payment_image.reference, "lame", {"app": "lame"}, "/nope"))
        for name, app in (("x", "pay"), ("lame", "lame"), ("nobody", "nobody")):
            kubectl("apply", "-f", "-", input=_service(name, app))
        kubectl("wait", "--for=condition=Ready", "pod/pay", "--timeout=60s")
        assert poll(lambda: get_json(kubectl, "endpoints", "lame").get("subsets"), within=30)
        yield running
    finally:
        running.process.stop(grace=10)


def test_kubectl_get_raw_reaches_a_service(cluster: Cluster) -> None:
    for name in ("x:8080", "x:http", "http:x:8080"):
        answer = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/default/services/{name}/proxy/healthz")
        assert json.loads(answer)["status"] == "ok", answer


def test_a_post_with_a_body_goes_through_a_service_and_is_read_back_from_the_pod(cluster: Cluster) -> None:
    charge = {
        "idempotency_key": str(uuid.uuid4()),
        "amount": {"currency_code": "USD", "units": 12, "nanos": 0},
        "credit_card": VISA,
    }
    with httpx.Client(timeout=10, trust_env=False) as client:
        answer = client.post(
            f"{cluster.url}/api/v1/namespaces/default/services/x:8080/proxy/charges", json=charge
        )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["card_last4"], created["amount"]["units"]) == ("0454", 12)
    path = f"/api/v1/namespaces/default/pods/pay/proxy/charges/{created['transaction_id']}"
    assert json.loads(cluster.kubectl("get", "--raw", path)) == created
    # kubectl's own POST declares no JSON body, which the service refuses (415); its answer comes back
    refused = cluster.kubectl.run(
        "create",
        "--raw",
        "/api/v1/namespaces/default/services/x:8080/proxy/charges",
        "-f",
        "-",
        input=json.dumps(charge),
        check=False,
    )
    assert refused.returncode == 1
    assert "Error from server (UnsupportedMediaType)" in refused.stderr


def test_a_pod_is_reached_on_its_first_port_or_the_one_named(cluster: Cluster) -> None:
    pod = get_json(cluster.kubectl, "pod", "pay")
    for name in ("pay", "pay:8080", "pay:http"):
        with httpx.Client(timeout=10, trust_env=False) as client:
            answer = client.get(f"{cluster.url}/api/v1/namespaces/default/pods/{name}/proxy/healthz")
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-service-version"]
    assert pod["status"]["podIP"].startswith("127.112.")


def test_kubectl_says_why_a_service_without_ready_endpoints_cannot_be_reached(cluster: Cluster) -> None:
    for name, message in (
        ("nobody", 'no endpoints available for service "nobody"'),
        ("lame:8080", 'no endpoints available for service "lame:8080"'),
    ):
        result = cluster.kubectl.run(
            "get", "--raw", f"/api/v1/namespaces/default/services/{name}/proxy/healthz", check=False
        )
        assert result.returncode == 1
        assert f"Error from server (ServiceUnavailable): {message}" in result.stderr, result.stderr
    with httpx.Client(timeout=10, trust_env=False) as client:
        answer = client.get(f"{cluster.url}/api/v1/namespaces/default/services/nobody/proxy/healthz")
    assert answer.status_code == 503
    assert answer.json()["reason"] == "ServiceUnavailable"


def test_a_port_nothing_listens_on_and_a_pod_not_running(cluster: Cluster) -> None:
    refused = cluster.kubectl.run("get", "--raw", "/api/v1/namespaces/default/pods/pay:9/proxy/", check=False)
    assert refused.returncode == 1
    assert re.search(
        r"Error from server \(ServiceUnavailable\): error trying to reach service: "
        r"dial tcp 127\.112\.\d+\.\d+:9: connect: connection refused",
        refused.stderr,
    ), refused.stderr
    pending = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pending", "namespace": "default"},
        "spec": {"containers": [payment_container("never:1", requests={"memory": "64Gi"})]},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pending))
    try:
        unplaced = cluster.kubectl.run(
            "get", "--raw", "/api/v1/namespaces/default/pods/pending/proxy/", check=False
        )
        assert "Error from server (BadRequest): address not allowed" in unplaced.stderr
    finally:
        cluster.kubectl("delete", "pod", "pending", "--timeout=30s")


def test_kubectl_proxy_passes_proxy_requests_on(cluster: Cluster) -> None:
    proxy = cluster.kubectl.popen("proxy", "--port=0")
    try:
        assert proxy.stdout is not None
        started = proxy.stdout.readline()  # "Starting to serve on 127.0.0.1:PORT"
        port = started.strip().rsplit(":", 1)[-1]
        assert port.isdigit(), started
        with httpx.Client(timeout=10, trust_env=False) as client:
            answer = client.get(
                f"http://{HOST}:{port}/api/v1/namespaces/default/services/x:8080/proxy/healthz"
            )
        assert answer.status_code == 200
        assert answer.json()["status"] == "ok"
    finally:
        proxy.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proxy.wait(timeout=10)
        if proxy.poll() is None:
            proxy.kill()
            proxy.wait()

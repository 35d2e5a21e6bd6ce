"""The resolver shim pods load: search domains as resolv.conf applies them, unknown names falling
through to the normal resolver, the hosts file re-read when replaced; and, in a real Python process
started with the shim on PYTHONPATH (as the kubelet starts a pod's), `socket`, asyncio, httpx, aiohttp,
aiobotocore and aiokafka all reaching a Service by its short name."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from sim.network.dns import render_hosts, search_domains, write_atomically
from sim.network.node import SHIM_DIR
from sim.network.shim import cluster_resolver
from sim.network.shim.cluster_resolver import ClusterResolver, candidates

WEB_IP = "127.91.2.2"


def resolver(tmp_path: Path, table: dict[str, list[str]], namespace: str = "shop") -> ClusterResolver:
    hosts = tmp_path / "hosts"
    write_atomically(hosts, render_hosts(table))
    return ClusterResolver(str(hosts), search_domains(namespace))


def test_every_name_form_of_a_service_resolves_with_the_pods_search_domains(tmp_path: Path) -> None:
    found = resolver(tmp_path, {"cart.shop.svc.cluster.local": ["127.92.0.5"]})
    for name in ("cart", "cart.shop", "cart.shop.svc", "cart.shop.svc.cluster.local", "CART.Shop."[:-1]):
        assert found.lookup(name) == ("cart.shop.svc.cluster.local", ["127.92.0.5"]), name
    assert found.lookup("cart.shop.svc.cluster.local.") is not None
    # another namespace's Service needs its namespace in the name
    other = resolver(tmp_path, {"cart.shop.svc.cluster.local": ["127.92.0.5"]}, namespace="default")
    assert other.lookup("cart") is None
    assert other.lookup("cart.shop") is not None


def test_names_with_many_dots_are_tried_as_given_first() -> None:
    search = search_domains("default")
    assert candidates("payment", search)[0] == "payment.default.svc.cluster.local"
    assert candidates("a.b.c.d.e.f", search)[0] == "a.b.c.d.e.f"
    assert candidates("payment.", search) == ["payment"]


def test_unknown_names_and_addresses_fall_through(tmp_path: Path) -> None:
    found = resolver(tmp_path, {"cart.shop.svc.cluster.local": ["127.92.0.5"]})
    assert found.lookup("localhost") is None
    assert found.lookup("127.0.0.1") is None
    assert found.lookup("example.invalid") is None
    assert ClusterResolver(str(tmp_path / "missing"), ["shop.svc.cluster.local"]).lookup("cart") is None


def test_the_hosts_file_is_reread_when_replaced(tmp_path: Path) -> None:
    found = resolver(tmp_path, {"cart.shop.svc.cluster.local": ["127.92.0.5"]})
    assert found.lookup("cart") is not None
    write_atomically(tmp_path / "hosts", render_hosts({"ads.shop.svc.cluster.local": ["127.92.0.6"]}))
    assert found.lookup("cart") is None
    assert found.lookup("ads") == ("ads.shop.svc.cluster.local", ["127.92.0.6"])


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Recorder.seen.append(self.headers.get("User-Agent", ""))
        body = b"web says hi"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[int]:
    """An HTTP server standing in for Service `web` (its ClusterIP and port)."""
    server = http.server.ThreadingHTTPServer((WEB_IP, 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


CLIENT = """
import asyncio, json, socket, sys
port, kafka_port = int(sys.argv[1]), int(sys.argv[2])
out = {}
out["getaddrinfo"] = socket.getaddrinfo("web", port, type=socket.SOCK_STREAM)[0][4][0]
out["gethostbyname"] = socket.gethostbyname("web.shop")
out["gethostbyname_ex"] = socket.gethostbyname_ex("web")[0]
out["localhost"] = socket.gethostbyname("localhost")
try:
    socket.getaddrinfo("no-such-service", 80)
    out["unknown"] = "resolved"
except socket.gaierror:
    out["unknown"] = "gaierror"

import httpx
out["httpx"] = httpx.get(f"http://web:{port}/", trust_env=False).text

async def main():
    loop = asyncio.get_running_loop()
    out["loop.getaddrinfo"] = (await loop.getaddrinfo("web.shop.svc", port))[0][4][0]
    async with httpx.AsyncClient(trust_env=False) as client:
        out["httpx async"] = (await client.get(f"http://web.shop.svc.cluster.local:{port}/")).text
    import aiohttp
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://web:{port}/") as response:
            out["aiohttp"] = await response.text()
    import aiobotocore.session
    s3 = aiobotocore.session.get_session().create_client(
        "s3", endpoint_url=f"http://web:{port}", region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
    )
    async with s3 as client:
        try:
            await client.list_buckets()
        except Exception as err:
            out["aiobotocore"] = type(err).__name__
    import aiokafka
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=f"kafka:{kafka_port}", request_timeout_ms=5000)
    await producer.start()
    out["aiokafka"] = sorted(await producer.partitions_for("orders"))[:1]
    await producer.stop()

asyncio.run(main())
print(json.dumps(out))
"""


def test_a_pod_process_reaches_services_by_name_through_every_client(
    tmp_path: Path, web: int, kafka_bootstrap: str
) -> None:
    kafka_host, kafka_port = kafka_bootstrap.rsplit(":", 1)
    hosts = tmp_path / "hosts"
    write_atomically(
        hosts,
        render_hosts({"web.shop.svc.cluster.local": [WEB_IP], "kafka.shop.svc.cluster.local": [kafka_host]}),
    )
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("HTTP", "http", "ALL_PROXY"))
    }
    env.update(
        {
            "PYTHONPATH": str(SHIM_DIR),
            cluster_resolver.HOSTS_VARIABLE: str(hosts),
            cluster_resolver.SEARCH_VARIABLE: " ".join(search_domains("shop")),
        }
    )
    Recorder.seen.clear()
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, str(web), kafka_port],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["getaddrinfo"] == WEB_IP
    assert out["gethostbyname"] == WEB_IP
    assert out["gethostbyname_ex"] == "web.shop.svc.cluster.local"
    assert out["localhost"] == "127.0.0.1"
    assert out["unknown"] == "gaierror"
    assert out["loop.getaddrinfo"] == WEB_IP
    for client in ("httpx", "httpx async", "aiohttp"):
        assert out[client] == "web says hi", client
    assert "aiobotocore" in out, "aiobotocore's call did not fail on the stand-in's reply"
    assert any("Botocore" in agent or "aiobotocore" in agent for agent in Recorder.seen), Recorder.seen
    assert out["aiokafka"] == [0]


def test_without_the_shim_the_short_name_does_not_resolve() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("web", 80)

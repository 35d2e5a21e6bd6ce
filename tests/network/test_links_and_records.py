"""The service variables a container gets (`enableServiceLinks`) and the DNS records of ClusterIP and
headless Services, from a `Store`."""

from __future__ import annotations

from pathlib import Path

from sim.controllers.endpoints import EndpointsController
from sim.k8s.store import Store
from sim.kubelet.spec import PodSpec
from sim.network.dns import records
from sim.network.node import NodeNetwork
from tests.network.helpers import SERVICES, SLICES, add_pod, add_service


def pod_spec(namespace: str = "default", **spec: object) -> PodSpec:
    return PodSpec.parse(
        {"metadata": {"name": "client", "namespace": namespace}, "spec": {"containers": [], **spec}}
    )


def test_service_links_of_the_pods_namespace_as_the_kubelet_sets_them(tmp_path: Path) -> None:
    store = Store()
    add_service(
        store,
        "product-catalog",
        ports=[{"name": "http", "port": 8080}, {"name": "grpc", "port": 3550}],
        clusterIP="127.92.3.4",
    )
    add_service(store, "elsewhere", namespace="kube-system", ports=[{"port": 53}])
    network = NodeNetwork(store, tmp_path)
    network.links.reconcile()
    env = network.service_env(pod_spec())
    assert {k: v for k, v in env.items() if k.startswith("PRODUCT_CATALOG_")} == {
        "PRODUCT_CATALOG_SERVICE_HOST": "127.92.3.4",
        "PRODUCT_CATALOG_SERVICE_PORT": "8080",
        "PRODUCT_CATALOG_SERVICE_PORT_HTTP": "8080",
        "PRODUCT_CATALOG_SERVICE_PORT_GRPC": "3550",
        "PRODUCT_CATALOG_PORT": "tcp://127.92.3.4:8080",
        "PRODUCT_CATALOG_PORT_8080_TCP": "tcp://127.92.3.4:8080",
        "PRODUCT_CATALOG_PORT_8080_TCP_PROTO": "tcp",
        "PRODUCT_CATALOG_PORT_8080_TCP_PORT": "8080",
        "PRODUCT_CATALOG_PORT_8080_TCP_ADDR": "127.92.3.4",
        "PRODUCT_CATALOG_PORT_3550_TCP": "tcp://127.92.3.4:3550",
        "PRODUCT_CATALOG_PORT_3550_TCP_PROTO": "tcp",
        "PRODUCT_CATALOG_PORT_3550_TCP_PORT": "3550",
        "PRODUCT_CATALOG_PORT_3550_TCP_ADDR": "127.92.3.4",
    }
    assert not any(k.startswith("ELSEWHERE_") for k in env)
    assert network.service_env(pod_spec(enableServiceLinks=False)) == {}
    resolver = network.resolver_env(pod_spec("shop"))
    assert resolver["SHOPSTACK_DNS_SEARCH"] == "shop.svc.cluster.local svc.cluster.local cluster.local"
    assert resolver["SHOPSTACK_CLUSTER_HOSTS"] == str(tmp_path / "hosts")


def test_records_of_cluster_ip_and_headless_services() -> None:
    store = Store()
    add_pod(store, "kafka-0", "127.91.4.2", labels={"app": "kafka"})
    add_pod(store, "kafka-1", "127.91.4.3", labels={"app": "kafka"}, ready=False)
    add_service(store, "kafka", selector={"app": "kafka"}, clusterIP="None")
    add_service(store, "payment", clusterIP="127.92.4.4")
    add_service(store, "ext", type="ExternalName", externalName="example.com", selector={"x": "y"})
    EndpointsController(store).reconcile()
    table = records(store.iter_objects(SERVICES), store.iter_objects(SLICES))
    assert table == {
        "kafka.default.svc.cluster.local": ["127.91.4.2"],
        "payment.default.svc.cluster.local": ["127.92.4.4"],
    }

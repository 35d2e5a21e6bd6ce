"""The Endpoints and EndpointSlice controller, in-process with a `Store`: ready, unready and terminating
pods; named and numbered target ports; updates on readiness; removal with the Service."""

from __future__ import annotations

from sim.controllers.endpoints import EndpointsController
from sim.k8s.store import Obj, Store
from tests.network.helpers import ENDPOINTS, PODS, SERVICES, add_pod, add_service, set_ready, slices_of


def endpoints(store: Store, name: str = "payment") -> Obj:
    return store.get(ENDPOINTS, "default", name)


def test_ready_and_unready_pods_with_a_named_target_port() -> None:
    store = Store()
    add_pod(store, "payment-a", "127.91.0.2")
    add_pod(store, "payment-b", "127.91.0.3", ready=False)
    add_pod(store, "pending", None)
    add_pod(store, "other", "127.91.0.9", labels={"app": "cart"})
    add_service(store)
    EndpointsController(store).reconcile()

    (subset,) = endpoints(store)["subsets"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    (ready,) = subset["addresses"]
    assert ready["ip"] == "127.91.0.2"
    assert ready["nodeName"] == "node-1"
    pod_a = store.get(PODS, "default", "payment-a")
    assert ready["targetRef"] == {
        "kind": "Pod",
        "namespace": "default",
        "name": "payment-a",
        "uid": pod_a["metadata"]["uid"],
    }
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["127.91.0.3"]

    (slice_obj,) = slices_of(store, "payment")
    assert slice_obj["apiVersion"] == "discovery.k8s.io/v1"
    assert slice_obj["addressType"] == "IPv4"
    assert slice_obj["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    conditions = {e["addresses"][0]: e["conditions"] for e in slice_obj["endpoints"]}
    assert conditions == {
        "127.91.0.2": {"ready": True, "serving": True, "terminating": False},
        "127.91.0.3": {"ready": False, "serving": False, "terminating": False},
    }
    service = store.get(SERVICES, "default", "payment")
    (owner,) = slice_obj["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("Service", service["metadata"]["uid"])


def test_readiness_changes_move_pods_between_lists() -> None:
    store = Store()
    add_pod(store, "payment-a", "127.91.0.2")
    add_service(store)
    controller = EndpointsController(store)
    controller.reconcile()
    set_ready(store, "payment-a", False)
    controller.reconcile()
    (subset,) = endpoints(store)["subsets"]
    assert "addresses" not in subset
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["127.91.0.2"]
    set_ready(store, "payment-a", True)
    controller.reconcile()
    assert [a["ip"] for a in endpoints(store)["subsets"][0]["addresses"]] == ["127.91.0.2"]
    # a pass with nothing new writes nothing
    version = endpoints(store)["metadata"]["resourceVersion"]
    controller.reconcile()
    assert endpoints(store)["metadata"]["resourceVersion"] == version


def test_a_terminating_pod_leaves_endpoints_but_stays_in_the_slice_as_terminating() -> None:
    store = Store(graceful_pods=True)
    add_pod(store, "payment-a", "127.91.0.2")
    add_pod(store, "payment-b", "127.91.0.3")
    add_service(store)
    controller = EndpointsController(store)
    store.delete(PODS, "default", "payment-b")  # marked: deletionTimestamp, still running
    controller.reconcile()
    assert [a["ip"] for a in endpoints(store)["subsets"][0]["addresses"]] == ["127.91.0.2"]
    (slice_obj,) = slices_of(store, "payment")
    conditions = {e["addresses"][0]: e["conditions"] for e in slice_obj["endpoints"]}
    assert conditions["127.91.0.3"] == {"ready": False, "serving": True, "terminating": True}


def test_named_ports_that_differ_between_pods_make_separate_subsets_and_slices() -> None:
    store = Store()
    add_pod(store, "old", "127.91.0.2", ports=[{"name": "http", "containerPort": 8080}])
    add_pod(store, "new", "127.91.0.3", ports=[{"name": "http", "containerPort": 9090}])
    add_pod(store, "none", "127.91.0.4", ports=[{"name": "metrics", "containerPort": 9000}])
    add_service(
        store,
        ports=[
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "admin", "port": 81, "targetPort": 7000},
        ],
    )
    EndpointsController(store).reconcile()
    by_ip = {
        a["ip"]: sorted((p["name"], p["port"]) for p in subset["ports"])
        for subset in endpoints(store)["subsets"]
        for a in subset["addresses"]
    }
    assert by_ip == {
        "127.91.0.2": [("admin", 7000), ("http", 8080)],
        "127.91.0.3": [("admin", 7000), ("http", 9090)],
        # no `http` port: it serves only the numbered one
        "127.91.0.4": [("admin", 7000)],
    }
    slices = slices_of(store, "payment")
    assert len(slices) == 3
    assert {
        e["addresses"][0]: sorted(p["port"] for p in s["ports"]) for s in slices for e in s["endpoints"]
    } == {"127.91.0.2": [7000, 8080], "127.91.0.3": [7000, 9090], "127.91.0.4": [7000]}


def test_endpoints_and_slices_go_with_the_service() -> None:
    store = Store()
    add_pod(store, "payment-a", "127.91.0.2")
    add_service(store)
    controller = EndpointsController(store)
    controller.reconcile()
    assert slices_of(store, "payment")
    store.delete(SERVICES, "default", "payment")
    assert not slices_of(store, "payment")  # garbage-collected through the owner reference
    controller.reconcile()
    assert not list(store.iter_objects(ENDPOINTS, "default"))


def test_a_service_without_selector_keeps_its_hand_written_endpoints() -> None:
    store = Store()
    store.create(SERVICES, {"metadata": {"name": "external"}, "spec": {"ports": [{"port": 5432}]}}, "default")
    store.create(
        ENDPOINTS,
        {
            "metadata": {"name": "external"},
            "subsets": [{"addresses": [{"ip": "127.91.0.50"}], "ports": [{"port": 5432}]}],
        },
        "default",
    )
    EndpointsController(store).reconcile()
    assert endpoints(store, "external")["subsets"][0]["addresses"] == [{"ip": "127.91.0.50"}]
    assert not slices_of(store, "external")

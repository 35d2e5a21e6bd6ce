"""The Prometheus stand-in's wrapper: the pod's Kubernetes discovery as files it writes from the cluster's
API, with Prometheus's own pod labels, so the config's relabelling works on a Prometheus without it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.standins.prometheus import main, pod_targets, rewrite

CONFIG = {
    "rule_files": ["alerts.yaml"],
    "scrape_configs": [
        {"job_name": "pods", "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": ["shop"]}}]},
        {"job_name": "static", "static_configs": [{"targets": ["127.0.0.1:9090"]}]},
    ],
}
POD = {
    "metadata": {
        "name": "cart-1",
        "namespace": "shop",
        "labels": {"app.kubernetes.io/name": "cart"},
        "annotations": {"prometheus.io/scrape": "true"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "cart-abc", "controller": True}],
    },
    "spec": {
        "nodeName": "node-a",
        "containers": [{"name": "cart", "ports": [{"name": "http", "containerPort": 8080}]}],
    },
    "status": {
        "podIP": "127.160.0.7",
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
    },
}


def test_kubernetes_discovery_becomes_a_file_the_wrapper_keeps_and_rules_become_absolute(
    tmp_path: Path,
) -> None:
    config, [discovery] = rewrite(
        yaml.safe_load(yaml.safe_dump(CONFIG)), "http://127.0.0.1:6443", Path("/mnt/config"), tmp_path
    )
    pods, static = config["scrape_configs"]
    assert "kubernetes_sd_configs" not in pods
    assert pods["file_sd_configs"][0]["files"] == [str(discovery.target)]
    assert (discovery.api_server, discovery.namespaces) == ("http://127.0.0.1:6443", ["shop"])
    assert static == CONFIG["scrape_configs"][1]
    assert config["rule_files"] == ["/mnt/config/alerts.yaml"]


def test_a_pod_gives_one_target_per_port_with_the_labels_prometheus_discovery_gives() -> None:
    [group] = pod_targets(POD)
    assert group["targets"] == ["127.160.0.7:8080"]
    labels = group["labels"]
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
    assert labels["__meta_kubernetes_pod_label_app_kubernetes_io_name"] == "cart"
    assert labels["__meta_kubernetes_pod_container_port_name"] == "http"
    assert labels["__meta_kubernetes_pod_ready"] == "true"
    assert labels["__meta_kubernetes_pod_controller_kind"] == "ReplicaSet"
    assert pod_targets({**POD, "status": {"phase": "Pending"}}) == []


def test_an_unreadable_config_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "prometheus.yml"
    assert main(["--api-server", "http://x", "--", "prometheus", f"--config.file={missing}"]) == 2
    assert str(missing) in capsys.readouterr().err

"""The monitoring stand-ins' own logic: what the Prometheus wrapper turns into file discovery (the
Alertmanager pods, the probes' HTTP discovery of a cluster Service), how the binaries' wrappers set the
pod's listen address and resolve cluster names, what the Alertmanager and kube-state-metrics stand-ins
refuse, and Grafana's step and interval arithmetic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.model import render
from sim.standins import alertmanager, binaries, grafana_query, kube_state_metrics
from sim.standins.prometheus import Discovery, HttpDiscovery, rewrite
from tests.unit.model_configs import LOCAL, find


def test_the_models_prometheus_config_becomes_file_discovery_for_pods_alertmanagers_and_probes(
    tmp_path: Path,
) -> None:
    config = yaml.safe_load(find(render(LOCAL), "ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    rewritten, discoveries = rewrite(config, "http://127.0.0.1:6443", Path("/etc/prometheus"), tmp_path)
    assert not any("kubernetes_sd_configs" in job for job in rewritten["scrape_configs"])
    (manager,) = rewritten["alerting"]["alertmanagers"]
    assert "kubernetes_sd_configs" not in manager
    assert manager["file_sd_configs"][0]["files"][0].startswith(str(tmp_path))
    probes = next(job for job in rewritten["scrape_configs"] if job["job_name"] == "synthetic-http")
    assert "http_sd_configs" not in probes  # a cluster name the binary cannot resolve: fetched by the wrapper
    http = [d for d in discoveries if isinstance(d, HttpDiscovery)]
    assert [d.url for d in http] == ["http://synthetic-monitor.shopstack.svc:9116/targets"]
    # every kubernetes_sd_configs (the scrape jobs' but the probes', and the Alertmanagers')
    assert sum(isinstance(d, Discovery) for d in discoveries) == len(rewritten["scrape_configs"])


def test_an_http_discovery_of_an_address_is_left_to_prometheus(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "scrape_configs": [{"job_name": "x", "http_sd_configs": [{"url": "http://127.0.0.1:9/targets"}]}]
    }
    rewritten, discoveries = rewrite(config, "http://api", Path("/etc"), tmp_path)
    assert rewritten["scrape_configs"][0]["http_sd_configs"] == [{"url": "http://127.0.0.1:9/targets"}]
    assert discoveries == []


@pytest.mark.parametrize(
    ("host", "cluster"),
    [
        ("alert-receiver", True),
        ("alert-receiver.shopstack.svc", True),
        ("alert-receiver.shopstack.svc.cluster.local", True),
        ("127.0.0.1", False),
        ("hooks.slack.com", False),
        ("k8s-shop-123.us-east-1.elb.amazonaws.com", False),
    ],
)
def test_cluster_names_are_told_from_the_worlds(host: str, cluster: bool) -> None:
    assert binaries.is_cluster_name(host) is cluster


def test_a_url_with_an_address_or_a_public_name_is_not_touched() -> None:
    assert binaries.resolve_url("http://127.0.0.1:8080/alerts") == "http://127.0.0.1:8080/alerts"
    assert binaries.resolve_url("https://hooks.slack.com/x") == "https://hooks.slack.com/x"


def test_the_listen_address_is_the_pods_on_the_images_port() -> None:
    assert binaries.with_listen(["--config.file=/c"], "127.9.0.1:9115") == [
        "--config.file=/c",
        "--web.listen-address=127.9.0.1:9115",
    ]
    assert binaries.with_listen(["--web.listen-address=:9115"], "127.9.0.1:9115") == [
        "--web.listen-address=127.9.0.1:9115"
    ]
    with pytest.raises(binaries.StandInError, match="the image's port 9115 only"):
        binaries.with_listen(["--web.listen-address", ":9999"], "127.9.0.1:9115")


def test_the_alertmanager_stand_in_refuses_clustering_and_resolves_webhooks(tmp_path: Path) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "route: {receiver: r}\n"
        "receivers: [{name: r, webhook_configs: [{url: 'http://127.0.0.1:8080/alerts'}]}]\n"
    )
    with pytest.raises(binaries.StandInError, match="gossip clustering is not implemented"):
        alertmanager.prepare(["am", f"--config.file={config}"], "127.9.0.2:9093", tmp_path)
    argv = alertmanager.prepare(
        ["am", f"--config.file={config}", "--cluster.listen-address="], "127.9.0.2:9093", tmp_path
    )
    assert argv == [
        "am",
        "--cluster.listen-address=",
        f"--config.file={tmp_path / 'alertmanager.yml'}",
        "--web.listen-address=127.9.0.2:9093",
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--namespaces=shop", "--resources=pods,secrets"],
            "implements deployments, horizontalpodautoscalers",
        ),
        (["--namespaces=shop", "--metric-allowlist=x"], "--metric-allowlist is not implemented"),
        (["--resources=pods"], "give --namespaces"),
    ],
)
def test_kube_state_metrics_refuses_what_it_does_not_implement(args: list[str], says: str) -> None:
    with pytest.raises(kube_state_metrics.ConfigError, match=says):
        kube_state_metrics.parse_options(args)


def test_kube_state_metrics_reports_as_kube_state_metrics_does() -> None:
    options = kube_state_metrics.parse_options(["--namespaces=shop", "--resources=deployments,pods"])
    deployment = {
        "metadata": {"name": "cart-blue", "namespace": "shop", "generation": 3},
        "spec": {"replicas": 2},
        "status": {"replicas": 2, "availableReplicas": 1, "observedGeneration": 3},
    }
    pod = {
        "metadata": {"name": "cart-blue-x", "namespace": "shop", "uid": "u1"},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "cart",
                    "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "Error"}},
                }
            ],
        },
    }
    text = kube_state_metrics.exposition(options, {"deployments": [deployment], "pods": [pod]})
    lines = text.splitlines()
    assert 'kube_deployment_spec_replicas{namespace="shop",deployment="cart-blue"} 2' in lines
    assert 'kube_deployment_status_replicas_available{namespace="shop",deployment="cart-blue"} 1' in lines
    assert 'kube_deployment_status_replicas_unavailable{namespace="shop",deployment="cart-blue"} 0' in lines
    labels = 'namespace="shop",pod="cart-blue-x",uid="u1",container="cart"'
    assert f"kube_pod_container_status_restarts_total{{{labels}}} 4" in lines
    assert f'kube_pod_container_status_waiting_reason{{{labels},reason="CrashLoopBackOff"}} 1' in lines
    assert f'kube_pod_container_status_last_terminated_reason{{{labels},reason="Error"}} 1' in lines
    assert f"kube_pod_container_status_waiting{{{labels}}} 1" in lines
    assert 'kube_pod_status_phase{namespace="shop",pod="cart-blue-x",uid="u1",phase="Running"} 1' in lines
    assert "# TYPE kube_pod_container_status_restarts_total counter" in lines


@pytest.mark.parametrize(
    ("span", "points", "scrape", "step", "rate"),
    [
        (3600, 1000, 15, 15, 60),  # an hour: 3.6 s per point, under the scrape interval
        (6 * 3600, 1000, 15, 20, 60),  # 21.6 s rounds to 20 s
        (7 * 86400, 1000, 15, 600, 615),  # a week: 604.8 s rounds to 10 min
        (900, 1024, 5, 5, 20),
    ],
)
def test_grafanas_step_and_rate_interval(
    span: float, points: int, scrape: float, step: float, rate: float
) -> None:
    window = grafana_query.window({"maxDataPoints": points}, 1_000_000.0, 1_000_000.0 + span, scrape)
    assert (window.step, window.rate_interval) == (step, rate)
    assert window.start % step == 0


def test_grafanas_time_range_and_legends() -> None:
    assert grafana_query.moment("now-15m", 10_000.0) == 10_000.0 - 900
    assert grafana_query.moment("1700000000000", 0) == 1_700_000_000
    with pytest.raises(grafana_query.QueryError):
        grafana_query.moment("yesterday", 0)
    assert grafana_query.legend("{{service}} ({{ pod }})", {"service": "cart", "pod": "c-1"}) == "cart (c-1)"
    assert grafana_query.legend("__auto", {"service": "cart"}) == ""

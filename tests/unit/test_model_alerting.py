"""Alerting and synthetic monitoring in the model: the stage's clock (rules, scrapes, Alertmanager's waits),
Prometheus' alerting, kube-state-metrics and probe jobs, Alertmanager's routing to the receiver, the
synthetic monitor's pod, their NetworkPolicies, and the monitoring's programs (standard library only)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.model import (
    SERVICE_NAMES,
    ModelConfig,
    alerting,
    alertmanager,
    kube_state_metrics,
    promtool,
    render,
    synthetic,
)
from infra.model.programs import alert_receiver, synthetic_monitor
from infra.model.services import MONITORING, SYNTHETIC
from infra.settings import EMULATOR_ALERT_TIME_SCALE, Settings
from tests.unit.model_configs import AWS, LOCAL, find, render_with

FAST = 0.1


def prometheus_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    data = find(objects, "ConfigMap", "prometheus-config")["data"]
    document: dict[str, Any] = yaml.safe_load(data["prometheus.yml"])
    return document


def test_durations_read_and_write_as_prometheus_does() -> None:
    assert alerting.seconds("1h30m") == 5400
    assert alerting.seconds("250ms") == 0.25
    assert [alerting.duration(s) for s in (0, 30, 90, 120, 3600, 5400)] == [
        "0s",
        "30s",
        "90s",
        "2m",
        "1h",
        "90m",
    ]
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        alerting.seconds("5 minutes")


def test_the_clock_scales_for_windows_offsets_and_subqueries_with_floors() -> None:
    expr = "rate(x[5m]) > rate(x[1m] offset 1h) and max_over_time(y[30m:1m]) > 0"
    assert alerting.scale_expression(expr, 1) == expr
    # a tenth: 5 s scrapes, so no window under 20 s; offsets scale without a floor
    assert alerting.scale_expression(expr, FAST) == (
        "rate(x[30s]) > rate(x[20s] offset 6m) and max_over_time(y[3m:6s]) > 0"
    )
    assert alerting.scrape_seconds(1) == 15
    assert alerting.scrape_seconds(FAST) == 5


def test_rules_as_written_in_aws_and_a_tenth_of_their_times_locally() -> None:
    aws = alerting.rules(1)
    fast = alerting.rules(FAST)
    for group_aws, group_fast in zip(aws["groups"], fast["groups"], strict=True):
        for rule_aws, rule_fast in zip(group_aws["rules"], group_fast["rules"], strict=True):
            assert rule_fast["labels"] == rule_aws["labels"]
            if "for" in rule_aws:
                assert alerting.seconds(rule_fast["for"]) == pytest.approx(
                    alerting.seconds(rule_aws["for"]) * FAST
                )
            for window in alerting.windows(rule_fast["expr"]):
                assert window >= alerting.WINDOW_SCRAPES * alerting.scrape_seconds(FAST)
    assert alerting.rules_text(AWS) == alerting.ALERTS_FILE.read_text()
    local = find(render_with(LOCAL, alert_time_scale=FAST), "ConfigMap", "prometheus-config")["data"]
    assert yaml.safe_load(local["alerts.yaml"]) == fast


def test_every_alert_has_a_severity_a_summary_and_a_promtool_test() -> None:
    tests = yaml.safe_load(alerting.ALERTS_FILE.with_name("alerts_test.yaml").read_text())
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    for group in alerting.rules(1)["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert rule["alert"] in tested


def test_every_service_has_its_absent_target_alert() -> None:
    absent = {
        rule["labels"]["service"]
        for group in alerting.rules(1)["groups"]
        for rule in group["rules"]
        if rule["alert"] == "TargetAbsent"
    }
    assert set(SERVICE_NAMES) <= absent


def test_the_stage_sets_the_clock() -> None:
    base = {"account_id": "123456789012"}
    assert Settings.parse({**base, "stage": "aws"}).alert_scale == 1
    assert Settings.parse(
        {**base, "stage": "local", "kube_access": "kubeconfig", "kubeconfig": "k"}
    ).alert_scale == (EMULATOR_ALERT_TIME_SCALE)
    assert Settings.parse({**base, "stage": "aws", "alert_time_scale": 0.5}).alert_scale == 0.5
    with pytest.raises(Exception, match="alert_time_scale"):
        ModelConfig(images={}, alert_time_scale=2)


def test_prometheus_scrapes_and_evaluates_on_the_stages_clock() -> None:
    assert prometheus_config(render(AWS))["global"]["scrape_interval"] == "15s"
    fast = prometheus_config(render_with(LOCAL, alert_time_scale=FAST))
    assert fast["global"]["scrape_interval"] == fast["global"]["evaluation_interval"] == "5s"


def test_prometheus_sends_alerts_to_the_alertmanager_pods_it_discovers() -> None:
    (manager,) = prometheus_config(render(AWS))["alerting"]["alertmanagers"]
    assert manager["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["shopstack"]}}]
    keep = {r["regex"] for r in manager["relabel_configs"] if r["action"] == "keep"}
    assert {"alertmanager", "http"} <= keep


def test_kube_state_metrics_and_the_probes_have_jobs_of_their_own() -> None:
    jobs = {job["job_name"]: job for job in prometheus_config(render(AWS))["scrape_configs"]}
    ksm = jobs[kube_state_metrics.JOB]
    assert ksm["honor_labels"] is True
    probes = jobs[synthetic.HTTP_JOB]
    assert probes["metrics_path"] == "/probe"
    assert probes["http_sd_configs"][0]["url"] == "http://synthetic-monitor.shopstack.svc:9116/targets"
    pods = find(render(AWS), "Deployment", "kube-state-metrics")["spec"]["template"]["metadata"]
    assert "prometheus.io/scrape" not in (pods.get("annotations") or {})  # not through the pods' job


def test_alertmanager_notifies_the_receiver_and_resolves_on_the_stages_clock() -> None:
    def config(objects: list[dict[str, Any]]) -> dict[str, Any]:
        data = find(objects, "ConfigMap", "alertmanager-config")["data"]
        loaded: dict[str, Any] = yaml.safe_load(data["alertmanager.yml"])
        return loaded

    aws = config(render(AWS))
    assert aws["route"]["receiver"] == "alert-receiver"
    assert (aws["route"]["group_wait"], aws["route"]["group_interval"]) == ("30s", "5m")
    (receiver,) = aws["receivers"]
    assert receiver["webhook_configs"] == [
        {"url": "http://alert-receiver.shopstack.svc:8080/alerts", "send_resolved": True}
    ]
    fast = config(render_with(LOCAL, alert_time_scale=FAST))
    assert (fast["route"]["group_wait"], fast["route"]["group_interval"]) == ("3s", "30s")
    container = find(render(AWS), "Deployment", "alertmanager")["spec"]["template"]["spec"]["containers"][0]
    assert "--cluster.listen-address=" in container["args"]
    assert "@sha256:" in container["image"]


@pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool (Debian's prometheus-alertmanager) is missing"
)
def test_alertmanagers_config_passes_amtool(tmp_path: Path) -> None:
    data = find(render(AWS), "ConfigMap", "alertmanager-config")["data"]
    (tmp_path / "alertmanager.yml").write_text(data["alertmanager.yml"])
    checked = subprocess.run(
        ["amtool", "check-config", str(tmp_path / "alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.skipif(
    shutil.which("prometheus-blackbox-exporter") is None,
    reason="Debian's prometheus-blackbox-exporter is missing",
)
def test_the_blackbox_exporters_config_passes_its_check(tmp_path: Path) -> None:
    data = find(render(AWS), "ConfigMap", "synthetic-monitor-config")["data"]
    (tmp_path / "blackbox.yml").write_text(data["blackbox.yml"])
    command = ["prometheus-blackbox-exporter", f"--config.file={tmp_path / 'blackbox.yml'}", "--config.check"]
    checked = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_synthetic_monitor_reads_only_its_ingress_and_probes_beside_its_exporter() -> None:
    objects = render(AWS)
    role = find(objects, "Role", SYNTHETIC)
    assert role["rules"] == [
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["ingresses"],
            "resourceNames": ["shopstack"],
            "verbs": ["get"],
        }
    ]
    pod = find(objects, "Deployment", SYNTHETIC)["spec"]["template"]["spec"]
    exporter, journey = pod["containers"]
    assert exporter["image"].startswith("docker.io/prom/blackbox-exporter:")
    env = {e["name"]: e.get("value") for e in journey["env"]}
    assert env["BLACKBOX_ADDRESS"] == "$(POD_IP):9115"
    assert json.loads(env["PROBES"]) == synthetic.PROBES
    assert "SHOP_URL" not in env  # the ALB's address is the Ingress's, found when it exists
    assert env["JOURNEY_INTERVAL_SECONDS"] == "60"
    fast = find(render_with(LOCAL, alert_time_scale=FAST), "Deployment", SYNTHETIC)["spec"]["template"][
        "spec"
    ]
    assert {e["name"]: e.get("value") for e in fast["containers"][1]["env"]}[
        "JOURNEY_INTERVAL_SECONDS"
    ] == "6"


def test_without_prometheus_no_monitoring_is_rendered() -> None:
    objects = render_with(AWS, prometheus=False)
    names = {o["metadata"]["name"] for o in objects}
    assert not names & (MONITORING | {f"allow-{m}" for m in MONITORING})


def test_monitoring_admits_exactly_its_callers() -> None:
    objects = render(AWS)

    def sources(component: str) -> list[list[str]]:
        policy = find(objects, "NetworkPolicy", f"allow-{component}")
        return [
            sorted(
                v
                for f in rule.get("from", [])
                for e in f["podSelector"]["matchExpressions"]
                for v in e["values"]
            )
            for rule in policy["spec"]["ingress"]
        ]

    assert sources("alertmanager") == [["prometheus"], ["prometheus"]]
    assert sources("alert-receiver") == [["alertmanager"], ["prometheus"]]
    assert sources("kube-state-metrics") == [["prometheus"]]
    assert sources("synthetic-monitor") == [["prometheus"], ["prometheus"]]


@pytest.mark.parametrize(
    "program", [alert_receiver, synthetic_monitor], ids=lambda m: m.__name__.split(".")[-1]
)
def test_the_programs_are_in_their_configmaps_and_use_the_standard_library_only(program: Any) -> None:
    path = Path(program.__file__)
    tree = ast.parse(path.read_text())
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported - {"__future__"} <= set(sys.stdlib_module_names)
    config_maps = [o for o in render(AWS) if o["kind"] == "ConfigMap"]
    assert any(o["data"].get(path.name) == path.read_text() for o in config_maps)
    assert alertmanager.RECEIVER_PROGRAM.name == "alert_receiver.py"


def test_the_rules_tests_are_scaled_with_the_rules() -> None:
    document = {"tests": [{"interval": "1m", "alert_rule_test": [{"eval_time": "10m", "alertname": "X"}]}]}
    scaled = promtool.scaled_tests(document, FAST)
    assert scaled["evaluation_interval"] == "6s"
    assert scaled["tests"][0]["interval"] == "6s"
    assert scaled["tests"][0]["alert_rule_test"][0]["eval_time"] == "1m"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) is missing")
def test_the_lint_step_runs_every_rules_test_on_both_clocks() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.model.promtool"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("every test passes") == 2


@pytest.mark.parametrize(("ci", "status", "verdict"), [("", 0, "skipped"), ("true", 1, "failed")])
def test_without_promtool_the_lint_step_says_so_in_one_line_and_fails_only_in_ci(
    ci: str, status: int, verdict: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.model.promtool", "--promtool", "no-such-promtool"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "CI": ci},
    )
    assert done.returncode == status
    assert len(done.stderr.strip().splitlines()) == 1
    assert f"{verdict}: no `no-such-promtool` here" in done.stderr
    assert "apt-get install prometheus" in done.stderr

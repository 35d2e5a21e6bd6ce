"""The policy gate (`python -m infra.policy`): both stages pass kubernetes-validate and checkov, and the
gate does fail on a manifest that breaks a check. checkov lives in tox's lint env only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from infra import policy
from infra.model import render
from tests.unit.model_configs import LOCAL

ROOT = Path(__file__).resolve().parents[2]
LINT_BIN = ROOT / ".tox" / "lint" / "bin"
needs_checkov = pytest.mark.skipif(not (LINT_BIN / "checkov").exists(), reason="tox's lint env is not built")


def test_the_sample_configs_pass_kubernetes_validate() -> None:
    for config in policy.sample_configs():
        assert list(policy.schema_failures(config.stage, render(config))) == []


def test_a_field_the_schema_does_not_know_is_reported() -> None:
    flags = next(o for o in render(LOCAL) if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "flags")
    flags["spec"] = {"replicas": 1}
    (line,) = policy.schema_failures("local", [flags])
    assert line.startswith("local: ConfigMap shopstack/flags: kubernetes-validate: ")


@needs_checkov
def test_the_policy_gate_passes_on_both_stages() -> None:
    result = subprocess.run(
        [str(LINT_BIN / "python"), "-m", "infra.policy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert result.stdout == ""


@needs_checkov
def test_checkov_reports_a_privileged_container(tmp_path: Path) -> None:
    deployment = next(o for o in render(LOCAL) if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] |= {"privileged": True, "allowPrivilegeEscalation": True}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(deployment))
    lines = list(policy.checkov_failures(tmp_path, str(LINT_BIN / "checkov")))
    assert any("CKV_K8S_16" in line for line in lines), lines  # privileged
    assert all(line.startswith("bad: ") for line in lines), lines  # one line each, naming the file

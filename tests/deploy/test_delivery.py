"""Delivery as it runs, real processes throughout: CI's test step is the README's test command; the staging
job of deliver.yml, its `run:` steps executed in order in a shell with the job's variables but
SHOPSTACK_INVENTORY=local, builds and deploys the shop into a local cloud of this module's own, and the
smoke subset passes against it; the production job's deploy promotes exactly those digests; `python -m
infra.deliver drift` finds no drift on that fresh deploy, and names what a route deleted through the AWS
API and a Deployment scaled through the Kubernetes API made differ; the environments' settings files pick
an aws target whose plan includes the pipeline's roles; every action is pinned by commit; actionlint
passes on the workflows.

The tests from the staging job on run in order on one delivered shop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from infra.model.render import IMAGE_NAMES
from infra.settings import Settings
from sim.pytest_plugin import LocalCloud, running_local_cloud
from tests.k8s.conftest import kubectl_binary
from tests.support.pyinfra_run import ACCOUNT_ID, REPO, emulator_client

WORKFLOWS = REPO / ".github" / "workflows"
ENVIRONMENTS = REPO / "inventory" / "environments"
INTEGRATION = REPO / "tests" / "integration"
STATE_BUCKET = f"shopstack-state-{ACCOUNT_ID}-us-east-1"
#: what GitHub runs a `run:` step with (`shell: bash`)
SHELL = ("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c")
STEP_TIMEOUT_SECONDS = 900
#: `uses: owner/name@<40 hex> # vX.Y.Z`
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")

pytestmark = pytest.mark.timeout(1800)


def workflow(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())  # type: ignore[no-any-return]


def triggers(document: dict[str, Any]) -> dict[str, Any]:
    """A workflow's `on:` (which YAML 1.1, PyYAML's, reads as the key True)."""
    return document.get("on", document.get(True))  # type: ignore[no-any-return]


def run_steps(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def readme_test_command() -> str:
    """The README's command for "all the tests", from its quick start."""
    quick_start = (REPO / "README.md").read_text().split("```sh", 1)[1].split("```", 1)[0]
    [line] = [line for line in quick_start.splitlines() if "all the tests" in line]
    return line.split("#", 1)[0].strip()


# ---------------------------------------------------------------------------------------------- workflows


def test_ci_runs_exactly_the_readmes_test_command_on_every_push_and_pull_request() -> None:
    ci = workflow("ci.yml")
    assert {"push", "pull_request"} <= set(triggers(ci))
    [job] = ci["jobs"].values()
    assert job["steps"][-1]["run"] == readme_test_command() == "./tox"
    cache = next(step["with"] for step in job["steps"] if step.get("uses", "").startswith("actions/cache@"))
    assert cache["path"] == "~/.cache/uv"
    assert "hashFiles('uv.lock')" in cache["key"]
    python = next(s["with"] for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
    assert python["python-version"] == "3.11"


def test_every_action_is_pinned_by_its_commit_with_the_version_beside_it() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        uses = [line for line in path.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
        assert uses, path
        for line in uses:
            assert PINNED.match(line), f"{path.name}: {line.strip()} is not pinned by commit"


def test_deliver_takes_turns_reaches_aws_by_oidc_only_and_gates_production_on_staging() -> None:
    deliver = workflow("deliver.yml")
    assert set(triggers(deliver)) == {"push", "workflow_dispatch"}
    assert triggers(deliver)["push"]["branches"] == ["main"]
    assert deliver["concurrency"] == {"group": "deploy", "cancel-in-progress": False}
    assert deliver["permissions"] == {"id-token": "write", "contents": "read"}
    staging, production = deliver["jobs"]["staging"], deliver["jobs"]["production"]
    assert (staging["environment"], production["environment"], production["needs"]) == (
        "staging",
        "production",
        "staging",
    )
    text = "\n".join(path.read_text() for path in WORKFLOWS.glob("*.yml"))
    assert "secrets." not in text
    assert "aws-access-key-id" not in text
    for job in (staging, production):
        [credentials] = [s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")]
        assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
        for command in run_steps(job):
            assert command.startswith(("./tox ", ".tox/local/bin/python -m infra.deliver ")), command
    assert run_steps(staging)[-3:] == [
        ".tox/local/bin/python -m infra.deliver build",
        ".tox/local/bin/python -m infra.deliver deploy",
        ".tox/local/bin/python -m infra.deliver verify",
    ]
    assert run_steps(production)[-2:] == [
        ".tox/local/bin/python -m infra.deliver deploy --images build/images.json",
        ".tox/local/bin/python -m infra.deliver verify -m smoke",
    ]
    [upload] = [s for s in staging["steps"] if s.get("with", {}).get("name") == "images"]
    [download] = [s for s in production["steps"] if "download-artifact" in s.get("uses", "")]
    assert (download["with"]["name"], download["with"]["path"]) == ("images", "build")
    assert upload["with"]["path"].split() == ["build/images.json", "build/oci/"]


def test_drift_checks_both_targets_daily_and_by_hand() -> None:
    drift = workflow("drift.yml")
    assert {"schedule", "workflow_dispatch"} <= set(triggers(drift))
    [job] = drift["jobs"].values()
    assert [entry["environment"] for entry in job["strategy"]["matrix"]["include"]] == [
        "staging",
        "production",
    ]
    assert job["env"]["SHOPSTACK_ENVIRONMENT"] == "${{ matrix.environment }}"
    assert run_steps(job)[-1] == ".tox/local/bin/python -m infra.deliver drift"


def actionlint() -> Path:
    found = shutil.which("actionlint") or REPO / ".tox" / "lint" / "bin" / "actionlint"
    if not Path(found).exists():
        pytest.skip("no actionlint: it comes with the lint environment (`./tox -e lint` makes it)")
    return Path(found)


def test_actionlint_passes_on_the_workflows_and_fails_a_broken_one(tmp_path: Path) -> None:
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    checked = subprocess.run(
        [actionlint(), *workflows], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / "deliver.yml"
    broken.write_text((WORKFLOWS / "deliver.yml").read_text().replace("needs: staging", "needs: stagin"))
    refused = subprocess.run([actionlint(), broken], capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 1
    assert "stagin" in refused.stdout


# ---------------------------------------------------------------------------------------------- targets


def environment_settings(environment: str) -> Settings:
    data = tomllib.loads((ENVIRONMENTS / f"{environment}.toml").read_text())
    return Settings.parse({"stage": "aws", "account_id": ACCOUNT_ID, **data})


def test_production_is_larger_than_staging_and_each_is_delivered_from_its_own_environment() -> None:
    staging, production = environment_settings("staging"), environment_settings("production")
    assert staging.project != production.project
    assert (staging.github_environment, production.github_environment) == ("staging", "production")
    assert staging.github_repository == production.github_repository is not None
    sizes = [
        (s.node_group.min_size, s.node_group.desired_size, s.node_group.max_size)
        for s in (staging, production)
    ]
    assert all(p > s for s, p in zip(*sizes, strict=True))
    assert (staging.node_group.instance_type, production.node_group.instance_type) == (
        "t3.medium",
        "t3.large",
    )


def deliver(
    env: dict[str, str], *args: str, timeout: float = STEP_TIMEOUT_SECONDS
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.deliver", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_an_aws_environment_is_planned_with_its_settings_and_the_pipelines_roles(
    environment: str, moto_endpoint: str, tmp_path: Path
) -> None:
    """The aws target, with the AWS emulator for an account: SHOPSTACK_ENVIRONMENT picks the settings
    file. Drift plans with the images of the target's last deploy record (a scheduled check has no build):
    here an account whose record remains and whose resources are gone, so everything differs, the
    pipeline's roles included; with neither a record nor a build it says what to do."""
    project = tomllib.loads((REPO / "inventory" / "environments" / f"{environment}.toml").read_text())[
        "project"
    ]
    bucket = f"{project}-state-{ACCOUNT_ID}-us-east-1"
    env = {
        **clean_environment(),
        "SHOPSTACK_INVENTORY": "aws",
        "SHOPSTACK_ENVIRONMENT": environment,
        "SHOPSTACK_AWS_ACCOUNT_ID": ACCOUNT_ID,
        "SHOPSTACK_STAGE_LOGS": str(tmp_path),
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    s3 = emulator_client(moto_endpoint, "s3")
    s3.create_bucket(Bucket=bucket)
    record = {"images": {name: f"shopstack/{name}@sha256:{'0' * 64}" for name in IMAGE_NAMES}}
    s3.put_object(Bucket=bucket, Key="records/latest.json", Body=json.dumps(record).encode())
    planned = deliver(env, "drift")
    assert planned.returncode == 1, planned.stdout + planned.stderr
    [verdict] = [line for line in planned.stderr.splitlines() if "differ from the declaration" in line]
    assert f"drift in aws {environment}:" in verdict
    differing = verdict.split("declaration: ", 1)[1].split("; ")
    assert "EKS cluster 1.30" in differing
    assert any(name.startswith("IAM: GitHub Actions OIDC provider") for name in differing), verdict
    assert any(name.startswith("IAM: the pipeline's roles") for name in differing), verdict
    refused = deliver({**env, "SHOPSTACK_ENVIRONMENT": "qa"}, "drift")
    assert refused.returncode == 2
    assert "SHOPSTACK_ENVIRONMENT, one of production, staging" in refused.stderr


# ---------------------------------------------------------------------------------------------- delivered


def clean_environment() -> dict[str, str]:
    """This process's variables without tox's (the steps start tox themselves) or the project's: what a
    fresh runner has. `python3` is this interpreter, as on a runner it is the one `./tox` made its
    environments from (another would make `./tox` build its own environment anew)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TOX_", "SHOPSTACK_")) and key not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with running_local_cloud(tmp_path_factory.mktemp("deliver-cloud"), address_blocks="192-195") as cloud:
        yield cloud


@pytest.fixture(scope="module")
def job_env(cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The staging job's variables, but SHOPSTACK_INVENTORY=local on this module's cloud. The job's
    variables from GitHub (`${{ vars.* }}`: the AWS account and region) are left out, as a local target
    has none; the steps' logs go to a directory of the test's."""
    job = workflow("deliver.yml")["jobs"]["staging"]
    variables = {key: str(value) for key, value in job["env"].items() if "${{" not in str(value)}
    return {
        **clean_environment(),
        **variables,
        "SHOPSTACK_INVENTORY": "local",
        "SHOPSTACK_SIM_STATE": str(cloud.state_dir),
        "SHOPSTACK_STAGE_LOGS": str(tmp_path_factory.mktemp("stage-logs")),
    }


@dataclass
class Step:
    command: str
    returncode: int
    output: str


def run_step(command: str, env: dict[str, str]) -> Step:
    done = subprocess.run(
        [*SHELL, command],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=STEP_TIMEOUT_SECONDS,
        check=False,
    )
    return Step(command, done.returncode, done.stdout)


@pytest.fixture(scope="module")
def staging_job(job_env: dict[str, str]) -> list[Step]:
    """deliver.yml's staging job, its `run:` steps in order until one fails (its `uses:` steps are
    GitHub's: checkout, Python, caches, AWS credentials, the artifact). Its verify runs the smoke subset:
    the full suite runs in `./tox`'s local stage anyway."""
    steps: list[Step] = []
    for command in run_steps(workflow("deliver.yml")["jobs"]["staging"]):
        if command.endswith("-m infra.deliver verify"):
            command += " -m smoke"
        steps.append(run_step(command, job_env))
        if steps[-1].returncode != 0:
            break
    return steps


def latest_record(cloud: LocalCloud) -> dict[str, Any]:
    body = emulator_client(cloud.aws, "s3").get_object(Bucket=STATE_BUCKET, Key="records/latest.json")["Body"]
    return json.loads(body.read())  # type: ignore[no-any-return]


def test_the_staging_job_builds_and_deploys_the_shop_and_its_smoke_verify_passes(
    staging_job: list[Step], cloud: LocalCloud
) -> None:
    for step in staging_job:
        assert step.returncode == 0, f"`{step.command}` failed:\n{step.output[-8000:]}"
    commands = run_steps(workflow("deliver.yml")["jobs"]["staging"])
    assert len(staging_job) == len(commands)
    build, deploy, verify = staging_job[-3:]
    assert "no deploy yet: all 10 images are new" in build.output
    assert "✓ deploy: deploy to local" in deploy.output
    summary = [line for line in verify.output.splitlines() if re.search(r"\d+ passed", line)]
    assert summary, verify.output[-4000:]
    smoke = sum(path.read_text().count("@pytest.mark.smoke\n") for path in INTEGRATION.glob("test_*.py"))
    assert 3 <= smoke <= 5
    assert re.search(rf"\b{smoke} passed, \d+ deselected", summary[-1]), summary[-1]
    assert httpx.get(f"{cloud.alb}/", timeout=30).status_code == 200
    images = json.loads((REPO / "build" / "images.json").read_text())
    assert latest_record(cloud)["images"] == images


def test_a_build_after_the_deploy_finds_no_image_that_differs_from_the_deployed_ones(
    staging_job: list[Step], job_env: dict[str, str]
) -> None:
    assert all(step.returncode == 0 for step in staging_job), "the staging job failed"
    again = deliver(job_env, "build")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 of 10 images differ from those of the last deploy" in again.stdout


def test_the_production_job_deploys_exactly_the_digests_staging_verified(
    staging_job: list[Step], job_env: dict[str, str], cloud: LocalCloud, tmp_path: Path
) -> None:
    """Its `deploy --images build/images.json` with the artifact downloaded elsewhere: the record names
    the artifact's digests (here the same as staging's, so nothing rolls)."""
    assert all(step.returncode == 0 for step in staging_job), "the staging job failed"
    artifact = tmp_path / "artifact"
    shutil.copytree(REPO / "build" / "oci", artifact / "oci")
    shutil.copy(REPO / "build" / "images.json", artifact / "images.json")
    [command] = [c for c in run_steps(workflow("deliver.yml")["jobs"]["production"]) if "deliver deploy" in c]
    promoted = run_step(command.replace("build/images.json", str(artifact / "images.json")), job_env)
    assert promoted.returncode == 0, promoted.output[-8000:]
    assert f"promoting the 10 images of {artifact / 'images.json'}" in promoted.output
    record = latest_record(cloud)
    assert record["images"] == json.loads((artifact / "images.json").read_text())
    assert f"build_dir={artifact}" in record["command"]


def kubectl(cloud: LocalCloud, *args: str) -> str:
    kubeconfig = cloud.state_dir / "eks" / "kubeconfig" / "shopstack"
    done = subprocess.run(
        [str(kubectl_binary()), "--kubeconfig", str(kubeconfig), "-n", "shopstack", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_drift_is_none_after_the_deploy_and_names_what_was_changed_by_hand(
    staging_job: list[Step], job_env: dict[str, str], cloud: LocalCloud
) -> None:
    assert all(step.returncode == 0 for step in staging_job), "the staging job failed"
    clean = deliver(job_env, "drift")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no drift: local is as declared" in clean.stdout

    ec2 = emulator_client(cloud.aws, "ec2")
    tables = ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": ["shopstack-private-*"]}])
    ec2.delete_route(RouteTableId=tables["RouteTables"][0]["RouteTableId"], DestinationCidrBlock="0.0.0.0/0")
    autoscaled = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in json.loads(kubectl(cloud, "get", "hpa", "-o", "json"))["items"]
    }
    deployments = json.loads(kubectl(cloud, "get", "deployments", "-o", "json"))["items"]
    scaled = next(
        d for d in deployments if d["metadata"]["name"] not in autoscaled and d["spec"]["replicas"] >= 1
    )
    kubectl(
        cloud,
        "scale",
        f"deployment/{scaled['metadata']['name']}",
        f"--replicas={scaled['spec']['replicas'] + 2}",
    )

    drifted = deliver(job_env, "drift")
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    [verdict] = drifted.stderr.strip().splitlines()
    differing = verdict.split("differ from the declaration: ", 1)[1].split("; ")
    assert len(differing) == 2, verdict
    assert differing[0] == "Route tables"
    assert differing[1].startswith("Kubernetes: apply"), verdict

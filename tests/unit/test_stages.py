"""The stages' configuration, where they cannot run here: `tox -e aws` refuses to start without an account
and credentials, `tox -e kind` skips without Docker, and what each would start is what the architecture
says (kind's cluster, the AWS emulator container, the inventories' data, the manifests' endpoints)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from infra.desired import model_config
from infra.model import render
from infra.settings import Settings
from infra.stages import TargetError
from infra.stages.emulator import kind_cluster, local_host_data
from tests.integration.stages import Phases
from tests.integration.stages.aws import kubeconfig_document
from tests.integration.stages.aws import preflight as aws_preflight
from tests.integration.stages.forwarding import forwarded_port, port_forward_argv
from tests.integration.stages.kind import (
    EMULATOR_NAME,
    cluster_config,
    emulator_spec,
    image_archive,
)
from tests.integration.stages.kind import preflight as kind_preflight

REPO = Path(__file__).resolve().parents[2]
KIND_ENV = {
    "SHOPSTACK_KIND_KUBECONFIG": "/tmp/kind/kubeconfig",
    "SHOPSTACK_KIND_AWS_ENDPOINT": "http://127.0.0.1:45000",
    "SHOPSTACK_KIND_CLUSTER_AWS_ENDPOINT": f"http://{EMULATOR_NAME}:5000",
    "SHOPSTACK_KIND_IMAGE_STORE": "/tmp/kind/images",
}


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment where boto3 finds no credentials and asks no metadata service."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name == "SHOPSTACK_AWS_ACCOUNT_ID":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


def run_suite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/integration", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_the_aws_stage_refuses_to_start_without_an_account_id_in_one_line(no_aws_credentials: None) -> None:
    done = run_suite("--stage", "aws")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert errors == [
        "ERROR: tox -e aws: set SHOPSTACK_AWS_ACCOUNT_ID to the 12-digit id of the account to deploy into"
    ]


def test_the_aws_stage_names_the_missing_region_and_the_missing_credentials(
    no_aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPSTACK_AWS_ACCOUNT_ID", "210987654321")
    assert "AWS_REGION" in (aws_preflight() or "")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert "no AWS credentials found" in (aws_preflight() or "")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert aws_preflight() is None


def test_the_aws_stage_kubeconfig_reaches_the_eks_endpoint_with_a_bearer_token() -> None:
    cluster = {
        "endpoint": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        "certificateAuthority": {"data": "Q0E="},
    }
    document = kubeconfig_document(cluster, "shopstack", "k8s-aws-v1.token")
    [entry] = document["clusters"]
    assert entry["cluster"] == {"server": cluster["endpoint"], "certificate-authority-data": "Q0E="}
    assert document["users"][0]["user"] == {"token": "k8s-aws-v1.token"}
    assert document["current-context"] == "shopstack"


def test_the_kind_stage_skips_every_test_with_one_reason_where_kind_or_docker_is_missing(
    tmp_path: Path,
) -> None:
    reason = kind_preflight({"PATH": str(tmp_path)})
    assert reason == "kind stage: the `kind` binary is not installed (https://kind.sigs.k8s.io)"
    if kind_preflight() is None:
        pytest.skip("this machine has kind and a Docker engine: the kind stage would run")
    done = run_suite("--stage", "kind")
    assert done.returncode == 0, done.stdout[-2000:]
    said = [line for line in done.stdout.splitlines() if "kind stage" in line]
    assert len(said) == 1, said
    assert "skipped: kind stage: " in said[0]
    assert " passed" not in done.stdout


def test_without_a_docker_engine_the_kind_stage_says_so(tmp_path: Path) -> None:
    kind = tmp_path / "kind"
    kind.write_text("#!/bin/sh\nexit 0\n")
    kind.chmod(0o755)
    docker = tmp_path / "docker"
    docker.write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock' >&2\nexit 1\n"
    )
    docker.chmod(0o755)
    reason = kind_preflight({"PATH": str(tmp_path)})
    assert reason == (
        "kind stage: no Docker engine answers here "
        "(Cannot connect to the Docker daemon at unix:///var/run/docker.sock)"
    )


def test_the_kind_cluster_has_a_worker_in_each_of_two_zones_and_its_api_on_loopback() -> None:
    config = cluster_config()
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]
    zones = [node["labels"]["topology.kubernetes.io/zone"] for node in config["nodes"][1:]]
    assert len(set(zones)) == 2
    assert config["networking"]["apiServerAddress"] == "127.0.0.1"


def test_the_emulator_is_moto_unless_a_localstack_token_is_given() -> None:
    moto = emulator_spec({}, 45000)
    assert moto.image.startswith("motoserver/moto:")
    assert moto.env == {"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    assert moto.runner_endpoint == "http://127.0.0.1:45000"
    assert moto.cluster_endpoint == f"http://{EMULATOR_NAME}:5000"
    localstack = emulator_spec({"LOCALSTACK_AUTH_TOKEN": "ls-token"}, 45001)
    assert localstack.image.startswith("localstack/localstack-pro:")
    assert localstack.env["LOCALSTACK_AUTH_TOKEN"] == "ls-token"
    assert {"eks", "ecr", "elbv2", "dynamodb", "s3"} <= set(localstack.env["SERVICES"].split(","))
    assert localstack.cluster_endpoint == f"http://{EMULATOR_NAME}:4566"


def test_the_kind_inventory_names_each_missing_variable() -> None:
    with pytest.raises(TargetError) as raised:
        kind_cluster({"SHOPSTACK_KIND_KUBECONFIG": "/tmp/kubeconfig"})
    message = str(raised.value)
    assert "SHOPSTACK_KIND_AWS_ENDPOINT" in message
    assert "SHOPSTACK_KIND_IMAGE_STORE" in message
    assert "SHOPSTACK_KIND_KUBECONFIG" not in message


def test_on_kind_the_deploy_reaches_the_emulator_on_loopback_and_the_pods_by_its_container_name(
    tmp_path: Path,
) -> None:
    build = tmp_path / "build"
    build.mkdir()
    digest = "sha256:" + "a" * 64
    (build / "images.json").write_text(
        json.dumps(
            {
                name: f"shopstack/{name}@{digest}"
                for name in (
                    "frontend-proxy",
                    "frontend",
                    "product-catalog",
                    "recommendation",
                    "cart",
                    "checkout",
                    "payment",
                    "accounting",
                    "fraud-detection",
                    "load-generator",
                )
            }
        )
    )
    settings = Settings.parse({**kind_cluster(KIND_ENV), "build_dir": str(build)})
    assert settings.aws_endpoint_url == "http://127.0.0.1:45000"
    objects = render(model_config(settings, {}))
    cart_config = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "cart-blue-config"
    )
    assert cart_config["data"]["AWS_ENDPOINT_URL"] == f"http://{EMULATOR_NAME}:5000"


def test_an_image_archive_names_the_image_for_containerd_and_holds_every_blob(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "blobs" / "sha256" / ("b" * 64)).write_bytes(b"manifest")
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "manifests": [{"digest": "sha256:" + "b" * 64}]})
    )
    archive = image_archive(layout, "registry/shopstack/cart:abc", tmp_path / "cart.tar")
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert names == ["blobs/sha256/" + "b" * 64, "index.json", "oci-layout"]
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "registry/shopstack/cart:abc"


def test_port_forwards_listen_on_loopback_and_their_port_is_read_from_kubectl() -> None:
    argv = port_forward_argv(Path("/k"), "shopstack", "prometheus", 9090)
    assert argv[argv.index("--address") + 1] == "127.0.0.1"
    assert argv[-2:] == ["service/prometheus", ":9090"]
    assert forwarded_port("Forwarding from 127.0.0.1:41234 -> 9090") == 41234
    assert forwarded_port("Handling connection for 41234") is None


def test_phases_add_up_each_phase_and_the_total() -> None:
    phases = Phases()
    with phases.timed("up"):
        pass
    phases.begin("suite")
    phases.end("suite")
    phases.end("never-begun")
    recorded = phases.as_dict()
    assert list(recorded) == ["up", "suite", "total"]
    assert recorded["total"] == pytest.approx(recorded["up"] + recorded["suite"], abs=0.2)


def test_the_local_stage_deploys_prometheus_only_where_its_binary_is_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    without = local_host_data(tmp_path / "sim", "http://127.0.0.1:4566", {"PATH": str(bin_dir)})
    assert without["prometheus"] is False
    assert "no `prometheus` binary here" in capsys.readouterr().err
    prometheus = bin_dir / "prometheus"
    prometheus.write_text("#!/bin/sh\n")
    prometheus.chmod(0o755)
    assert local_host_data(tmp_path / "sim", "http://127.0.0.1:4566", {"PATH": str(bin_dir)})["prometheus"]
    settings = tmp_path / "settings.toml"
    settings.write_text("prometheus = false\n")
    chosen = local_host_data(
        tmp_path / "sim", "http://127.0.0.1:4566", {"PATH": str(bin_dir), "SHOPSTACK_SETTINGS": str(settings)}
    )
    assert chosen["prometheus"] is False
    assert capsys.readouterr().err == ""

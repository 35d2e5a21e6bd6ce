"""ECR repositories and the images of build/images.json, deployed by the real pyinfra CLI into the AWS
emulator with the local cloud's publisher: the built payment image is loaded into an image store and listed
by its repository; a second run publishes nothing; drift in a repository is shown and repaired."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from containers.imagesjson import ImagesFile
from containers.nodestore import ImageStore
from containers.registry import Registry
from infra.aws.ecr import image_reference, layout_image, push_to_registry
from infra.settings import Settings
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from tests.conftest import BuiltImage
from tests.support.pyinfra_run import ACCOUNT_ID, Run, emulator_client, emulator_data, run_pyinfra

DEPLOY = """
from infra.aws import ecr
ecr.repositories(services=["payment", "cart"], name="repositories")
ecr.publish_images(name="images")
"""


def planned_changes(run: Run) -> set[str]:
    assert run.returncode == 0, run.output
    return {op["name"] for op in run.results()["plan"] if op["hosts_with_change"]}


def changed(run: Run) -> int:
    assert run.returncode == 0, run.output
    return int(run.results()["results"]["totals"]["success"])


@pytest.fixture(scope="module")
def payment_build(payment_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build directory of the payment image alone (the session's holds whatever else its tests built)."""
    build = tmp_path_factory.mktemp("payment-build")
    ImagesFile(build / "images.json").update({"payment": payment_image.reference})
    (build / "oci").mkdir()
    (build / "oci" / "payment").symlink_to(payment_image.layout)
    return build


@pytest.fixture(scope="module")
def data(moto_endpoint: str, payment_build: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The local cloud's publisher, an empty image store, and the payment image's build directory."""
    return emulator_data(
        moto_endpoint,
        build_dir=str(payment_build),
        image_publisher="local-store",
        image_store=str(tmp_path_factory.mktemp("image-store")),
    )


@pytest.fixture(scope="module")
def first_run(data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_pyinfra(tmp_path_factory.mktemp("first"), data, DEPLOY, "--json")


def digest_of(image: BuiltImage) -> str:
    return image.reference.rsplit("@", 1)[1]


def test_first_run_creates_scanned_immutable_repositories(first_run: Run, moto_endpoint: str) -> None:
    assert changed(first_run) == 2
    ecr = emulator_client(moto_endpoint, "ecr")
    found = {
        r["repositoryName"]: r
        for r in ecr.describe_repositories(repositoryNames=["shopstack/payment", "shopstack/cart"])[
            "repositories"
        ]
    }
    assert set(found) == {"shopstack/payment", "shopstack/cart"}
    for repository in found.values():
        assert repository["imageScanningConfiguration"]["scanOnPush"] is True
        assert repository["imageTagMutability"] == "IMMUTABLE"
        assert repository["encryptionConfiguration"]["encryptionType"] == "AES256"
        assert (
            '"countNumber": 30'
            in ecr.get_lifecycle_policy(repositoryName=repository["repositoryName"])["lifecyclePolicyText"]
        )


def test_first_run_publishes_the_built_image_to_the_store_and_the_repository(
    first_run: Run, moto_endpoint: str, data: dict[str, Any], payment_image: BuiltImage
) -> None:
    assert first_run.returncode == 0, first_run.output
    digest = digest_of(payment_image)
    listed = emulator_client(moto_endpoint, "ecr").describe_images(repositoryName="shopstack/payment")[
        "imageDetails"
    ]
    assert [image["imageDigest"] for image in listed] == [digest]
    store = ImageStore(Path(data["image_store"]))
    assert store.manifest_digest(image_reference(Settings.parse(data), "payment", digest)) == digest


def test_second_run_publishes_nothing(first_run: Run, data: dict[str, Any], tmp_path: Path) -> None:
    assert first_run.returncode == 0, first_run.output
    assert changed(run_pyinfra(tmp_path, data, DEPLOY, "--json")) == 0


def test_repository_drift_is_shown_by_dry_and_repaired(
    first_run: Run, moto_endpoint: str, data: dict[str, Any], tmp_path: Path
) -> None:
    assert first_run.returncode == 0, first_run.output
    ecr = emulator_client(moto_endpoint, "ecr")
    ecr.put_image_scanning_configuration(
        repositoryName="shopstack/cart", imageScanningConfiguration={"scanOnPush": False}
    )
    ecr.put_image_tag_mutability(repositoryName="shopstack/cart", imageTagMutability="MUTABLE")

    assert planned_changes(run_pyinfra(tmp_path, data, DEPLOY, "--dry", "--json")) == {"repositories"}
    assert changed(run_pyinfra(tmp_path, data, DEPLOY, "--json")) == 1

    (cart,) = ecr.describe_repositories(repositoryNames=["shopstack/cart"])["repositories"]
    assert cart["imageScanningConfiguration"]["scanOnPush"] is True
    assert cart["imageTagMutability"] == "IMMUTABLE"


def test_repositories_default_to_the_built_services_and_teardown_removes_all(
    moto_endpoint: str, payment_build: Path, tmp_path: Path
) -> None:
    data = emulator_data(moto_endpoint, project="gone", build_dir=str(payment_build))
    ecr = emulator_client(moto_endpoint, "ecr")

    def listed() -> set[str]:
        names = {r["repositoryName"] for r in ecr.describe_repositories()["repositories"]}
        return {name for name in names if name.startswith("gone/")}

    assert run_pyinfra(tmp_path, data, "from infra.aws import ecr\necr.repositories()\n").returncode == 0
    assert listed() == {"gone/payment"}
    ecr.create_repository(repositoryName="gone/removed-service")
    run = run_pyinfra(tmp_path, data, "from infra.aws import ecr\necr.repositories(present=False)\n")
    assert run.returncode == 0, run.output
    assert listed() == set()


def test_a_missing_build_is_one_clear_line(moto_endpoint: str, tmp_path: Path) -> None:
    data = emulator_data(moto_endpoint, build_dir=str(tmp_path / "no-build"))
    run = run_pyinfra(tmp_path, data, DEPLOY)
    assert run.returncode != 0
    assert "run `python -m containers build` first" in run.output
    assert "Traceback" not in run.output


def test_a_missing_layout_is_one_clear_line(moto_endpoint: str, payment_build: Path, tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    shutil.copy(payment_build / "images.json", build / "images.json")
    data = emulator_data(moto_endpoint, project="nolayout", build_dir=str(build))
    run = run_pyinfra(tmp_path, data, DEPLOY)
    assert run.returncode != 0
    assert f"{build / 'oci' / 'payment'} is not an OCI image layout" in run.output
    assert "Traceback" not in run.output


def test_image_reference_names_the_accounts_registry() -> None:
    settings = Settings.parse({"stage": "aws", "account_id": ACCOUNT_ID, "region": "eu-west-1"})
    digest = "sha256:" + "0" * 64
    assert image_reference(settings, "cart", f"shopstack/cart@{digest}") == (
        f"{ACCOUNT_ID}.dkr.ecr.eu-west-1.amazonaws.com/shopstack/cart@{digest}"
    )


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """A real OCI registry (`docker-registry`) on loopback, standing in for ECR's registry API: host:port."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (Debian package docker-registry)")
    address = f"127.0.0.1:{free_port('127.0.0.1')}"
    (tmp_path / "storage").mkdir()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'storage'}\n"
        f"http:\n  addr: {address}\n"
    )
    process = ManagedProcess(
        "docker-registry", [binary, "serve", str(config)], tmp_path / "registry.log"
    ).start()
    try:
        process.wait_ready(lambda: http_ok(f"http://{address}/v2/"), timeout=20)
        yield address
    finally:
        process.stop(grace=5)


def test_the_ecr_publisher_pushes_the_layout_over_the_registry_api(
    payment_image: BuiltImage, registry: str
) -> None:
    digest = digest_of(payment_image)
    image = layout_image(payment_image.layout, "payment", digest)
    with Registry(registry) as client:
        assert push_to_registry(client, "shopstack", image) == f"{registry}/shopstack/payment@{digest}"
        manifest, _ = client.get_manifest("shopstack/payment", digest)
        assert manifest == image.manifest_path.read_bytes()
        assert all(client.has_blob("shopstack/payment", blob.descriptor.digest) for blob in image.blobs)

"""Session fixtures: the real AWS emulator, Kafka broker and telemetry receiver, and the shop's services
as real processes on loopback; the payment image built by the project's builder and an image store it is
loaded into. Everything started here is stopped here."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from containers.nodestore import ImageStore
from sim.aws import client_env
from sim.supervisor.process import ManagedProcess, free_port, http_ok
from sim.telemetry.client import TelemetryQuery
from tests.support.images import BuildFailed, build_images
from tests.support.kafka import create_topic, start_tansu
from tests.support.moto import start_moto
from tests.support.shop import FlagsFile, Shop, create_tables

pytest_plugins = ["sim.pytest_plugin", "tests.integration.plugin"]

HOST = "127.0.0.1"
ORDERS_PARTITIONS = 3


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shop")


@pytest.fixture(scope="session")
def aws_env(workdir: Path) -> Iterator[dict[str, str]]:
    """A moto server; the `AWS_*` variables that reach it."""
    port = free_port(HOST)
    moto = start_moto(workdir / "logs", HOST, port)
    try:
        yield client_env(f"http://{HOST}:{port}")
    finally:
        moto.stop()


@pytest.fixture(scope="session")
def dynamodb(aws_env: dict[str, str]):  # type: ignore[no-untyped-def]
    return boto3.resource(
        "dynamodb",
        endpoint_url=aws_env["AWS_ENDPOINT_URL"],
        region_name=aws_env["AWS_DEFAULT_REGION"],
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(workdir: Path) -> Iterator[str]:
    """A Tansu broker with the `orders` topic."""
    port = free_port(HOST)
    broker = start_tansu(workdir / "logs", port, HOST)
    try:
        bootstrap = f"{HOST}:{port}"
        asyncio.run(create_topic(bootstrap, "orders", ORDERS_PARTITIONS))
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def telemetry(workdir: Path) -> Iterator[TelemetryQuery]:
    """The OTLP/HTTP receiver of the local cloud, with its query client."""
    port = free_port(HOST)
    receiver = ManagedProcess(
        "telemetry",
        [sys.executable, "-m", "sim.telemetry", "--host", HOST, "--port", str(port)],
        workdir / "logs" / "telemetry.log",
    ).start()
    url = f"http://{HOST}:{port}"
    try:
        receiver.wait_ready(lambda: http_ok(f"{url}/healthz"))
        yield TelemetryQuery(url)
    finally:
        receiver.stop()


@pytest.fixture(scope="session")
def flags(workdir: Path) -> FlagsFile:
    flags_file = FlagsFile(workdir / "flags.json")
    flags_file.write()
    return flags_file


@pytest.fixture(scope="session")
def shop(
    workdir: Path,
    aws_env: dict[str, str],
    kafka_bootstrap: str,
    telemetry: TelemetryQuery,
    flags: FlagsFile,
) -> Iterator[Shop]:
    """The services, each started on first `shop.ensure(name)` and kept for the session."""
    create_tables(aws_env)
    shop = Shop(
        workdir, aws_env=aws_env, kafka_bootstrap=kafka_bootstrap, otlp_endpoint=telemetry.url, flags=flags
    )
    try:
        yield shop
    finally:
        shop.stop_all()


@pytest.fixture
def clean_flags(flags: FlagsFile) -> Iterator[FlagsFile]:
    """The flags file, reset to all-off after the test."""
    try:
        yield flags
    finally:
        flags.clear()


@dataclass(frozen=True)
class BuiltImage:
    layout: Path
    reference: str  # shopstack/payment@sha256:...


@pytest.fixture(scope="session")
def image_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's build directory (`--out`), its store shared by every build of the session."""
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="session")
def payment_image(image_build: Path) -> BuiltImage:
    """The payment image, built with `python -m containers build --only payment`."""
    try:
        reference = build_images(image_build, ["payment"])["payment"]
    except BuildFailed as err:
        pytest.fail(str(err), pytrace=False)
    return BuiltImage(image_build / "oci" / "payment", reference)


@pytest.fixture(scope="session")
def shop_images(image_build: Path) -> Path:
    """All nine images, built with `python -m containers build`: the build directory the deploy reads."""
    try:
        build_images(image_build)
    except BuildFailed as err:
        pytest.fail(str(err), pytrace=False)
    return image_build


@pytest.fixture(scope="session")
def image_store(tmp_path_factory: pytest.TempPathFactory, payment_image: BuiltImage) -> ImageStore:
    """A store with the payment image loaded (its layer cache shared by the session's tests)."""
    store = ImageStore(tmp_path_factory.mktemp("images"))
    store.load(payment_image.layout)
    return store

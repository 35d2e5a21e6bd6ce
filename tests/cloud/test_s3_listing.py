"""The AWS emulator's own ListObjectsV2 (`sim.aws.s3_listing`) answers exactly what moto answers, for the
same requests on the same objects, and through the running emulator a client pages a long listing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import xmltodict
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import Client, EnvironBuilder

from sim import aws
from sim.aws import s3_listing
from sim.supervisor.process import free_port
from tests.support.moto import start_moto

SIGNED = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261206/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0"
}
KEYS = [
    *(
        f"clusters/c/topics/orders/partitions/{partition:010}/records/{offset:020}.batch"
        for partition in range(3)
        for offset in range(40)
    ),
    "clusters/c/topics/orders/partitions/0000000000/watermark.json",
    "groups/accounting/offsets/orders/0000000001.json",
    "odd keys/with space & <angle>/%percent+plus.json",
]
QUERIES = [
    "list-type=2",
    "list-type=2&prefix=clusters/c/topics/orders/partitions/0000000001/records/",
    "list-type=2&prefix=clusters/c/topics/orders/partitions/0000000001/records/&max-keys=7",
    "list-type=2&prefix=clusters/&delimiter=/",
    "list-type=2&prefix=clusters/c/topics/orders/partitions/&delimiter=/&max-keys=2",
    "list-type=2&start-after=clusters/c/topics/orders/partitions/0000000002/records/00000000000000000030.batch",
    "list-type=2&prefix=odd&encoding-type=url",
    "list-type=2&delimiter=/&encoding-type=url",
    "list-type=2&prefix=nothing/here/",
    "list-type=2&max-keys=0",
]


@pytest.fixture(scope="module")
def moto_app() -> DomainDispatcherApplication:
    return DomainDispatcherApplication(create_backend_app)


@pytest.fixture(scope="module")
def bucket(moto_app: DomainDispatcherApplication) -> str:
    name = f"kafka-{uuid.uuid4().hex[:12]}"
    client = Client(moto_app)
    assert client.put(f"/{name}", headers=SIGNED).status_code == 200
    for key in KEYS:
        assert client.put(f"/{name}/{key}", data=b"batch " + key.encode(), headers=SIGNED).status_code == 200
    return name


def _moto(moto_app: DomainDispatcherApplication, path: str, query: str) -> dict[str, Any]:
    response = Client(moto_app).get(path, query_string=query, headers=SIGNED)
    assert response.status_code == 200, response.text
    return dict(xmltodict.parse(response.data))


def _ours(path: str, query: str) -> dict[str, Any]:
    environ = EnvironBuilder(path=path, query_string=query, headers=SIGNED).get_environ()
    request = s3_listing.listing_request(environ)
    assert request is not None, f"{path}?{query} is not answered by the emulator's listing"
    status: list[str] = []
    body = s3_listing.list_objects_v2(request, lambda s, _: status.append(s))  # type: ignore[arg-type,return-value]
    assert body is not None
    assert status == ["200 OK"]
    return dict(xmltodict.parse(b"".join(body)))


@pytest.mark.parametrize("query", QUERIES)
def test_a_listing_is_the_one_moto_writes(
    moto_app: DomainDispatcherApplication, bucket: str, query: str
) -> None:
    assert _ours(f"/{bucket}", query) == _moto(moto_app, f"/{bucket}", query)


def test_a_continuation_token_pages_as_moto_does(moto_app: DomainDispatcherApplication, bucket: str) -> None:
    first = _moto(moto_app, f"/{bucket}", "list-type=2&max-keys=50")["ListBucketResult"]
    query = f"list-type=2&max-keys=50&continuation-token={first['NextContinuationToken']}"
    assert _ours(f"/{bucket}", query) == _moto(moto_app, f"/{bucket}", query)


def test_a_key_written_again_is_listed_as_it_is_now(moto_app: DomainDispatcherApplication) -> None:
    name = f"kafka-{uuid.uuid4().hex[:12]}"
    client = Client(moto_app)
    assert client.put(f"/{name}", headers=SIGNED).status_code == 200
    assert client.put(f"/{name}/watermark.json", data=b"{}", headers=SIGNED).status_code == 200
    before = _ours(f"/{name}", "list-type=2")
    assert client.put(f"/{name}/watermark.json", data=b'{"high": 42}', headers=SIGNED).status_code == 200

    after = _ours(f"/{name}", "list-type=2")

    assert after == _moto(moto_app, f"/{name}", "list-type=2")
    assert before["ListBucketResult"]["Contents"]["Size"] == "2"
    assert after["ListBucketResult"]["Contents"]["Size"] == "12"


@pytest.mark.parametrize(
    ("method", "path", "query", "headers"),
    [
        ("GET", "/kafka-bucket", "list-type=2&fetch-owner=true", SIGNED),  # owners: moto's
        ("GET", "/kafka-bucket", "list-type=2", {}),  # unsigned: moto's answer (its error)
        ("GET", "/kafka-bucket", "", SIGNED),  # ListObjects (v1)
        ("GET", "/kafka-bucket/a-key", "list-type=2", SIGNED),  # an object
        ("PUT", "/kafka-bucket", "list-type=2", SIGNED),
        (
            "GET",
            "/kafka-bucket",
            "list-type=2",
            {"Authorization": SIGNED["Authorization"].replace("/s3/", "/dynamodb/")},
        ),
    ],
)
def test_what_it_does_not_answer_goes_to_moto(
    method: str, path: str, query: str, headers: dict[str, str]
) -> None:
    environ = EnvironBuilder(method=method, path=path, query_string=query, headers=headers).get_environ()
    assert s3_listing.listing_request(environ) is None


def test_a_missing_bucket_gets_moto_s_error(moto_app: DomainDispatcherApplication) -> None:
    name = "no-such-bucket-here"
    environ = EnvironBuilder(path=f"/{name}", query_string="list-type=2", headers=SIGNED).get_environ()
    request = s3_listing.listing_request(environ)
    assert request is not None
    assert s3_listing.list_objects_v2(request, lambda s, h: None) is None  # type: ignore[arg-type,return-value]
    response = Client(moto_app).get(f"/{name}", query_string="list-type=2", headers=SIGNED)
    assert response.status_code == 404
    assert b"NoSuchBucket" in response.data


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start_moto(tmp_path_factory.mktemp("emulator"), port=port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def test_a_client_pages_a_long_listing_through_the_emulator(emulator: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=emulator, region_name=aws.REGION, **_credentials())
    s3.create_bucket(Bucket="kafka-listing")
    records = [f"topics/orders/partitions/0000000001/records/{n:020}.batch" for n in range(250)]
    for key in [*records, "topics/orders/partitions/0000000002/records/00000000000000000000.batch"]:
        s3.put_object(Bucket="kafka-listing", Key=key, Body=b"x")
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket="kafka-listing",
        Prefix="topics/orders/partitions/0000000001/records/",
        PaginationConfig={"PageSize": 100},
    )
    listed = [[item["Key"] for item in page["Contents"]] for page in pages]
    assert [len(page) for page in listed] == [100, 100, 50]
    assert [key for page in listed for key in page] == records
    folders = s3.list_objects_v2(Bucket="kafka-listing", Prefix="topics/orders/partitions/", Delimiter="/")
    assert [p["Prefix"] for p in folders["CommonPrefixes"]] == [
        "topics/orders/partitions/0000000001/",
        "topics/orders/partitions/0000000002/",
    ]


def _credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": aws.CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": aws.CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }

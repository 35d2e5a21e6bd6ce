"""The AWS emulator: moto in server mode, on loopback, with the AWS-managed IAM policies loaded, behind the
local cloud's own admin routes (`sim.awsemulator`); how it is started (one command line, for the supervisor
and the tests alike) and how clients reach it. `instance_types`: what EC2's instance types offer a node;
`s3_listing`: S3's object listings, answered from moto's model faster than moto writes them; `serving`:
moto's dispatcher and request handler without their per-request costs."""

from __future__ import annotations

import re
import sys
from urllib.parse import quote

DEFAULT_PORT = 4566
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
#: what moto's server needs in its environment: attaching AWS-managed policies works only with them loaded
SERVER_ENV = {"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
#: answers 200 once the server takes requests
HEALTH_PATH = "/moto-api/"
#: the local cloud's own routes on the emulator (none of AWS's or moto's paths starts so)
ADMIN_PREFIX = "/_shopstack/"
#: a SigV4-signed request's access key, region and service, in its Authorization header
SIGV4_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/")


def server_command(host: str, port: int) -> list[str]:
    """The command line of the emulator (moto's server and the admin routes) on `host:port`."""
    return [sys.executable, "-m", "sim.awsemulator", "-H", host, "-p", str(port)]


def eks_endpoint_path(account: str, region: str, cluster: str) -> str:
    """The admin route that sets what `DescribeCluster` reports as an EKS cluster's endpoint and CA."""
    account, region, cluster = (quote(part, safe="") for part in (account, region, cluster))
    return f"{ADMIN_PREFIX}eks/{account}/{region}/{cluster}/endpoint"


def client_env(endpoint: str) -> dict[str, str]:
    """The `AWS_*` variables that point an SDK at the emulator."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, **CREDENTIALS}

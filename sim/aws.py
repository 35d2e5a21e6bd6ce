"""The AWS emulator: moto in server mode, on loopback, with the AWS-managed IAM policies loaded; how it is
started (one command line, for the supervisor and the tests alike) and how clients reach it."""

from __future__ import annotations

import sys

DEFAULT_PORT = 4566
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
#: what moto's server needs in its environment: attaching AWS-managed policies works only with them loaded
SERVER_ENV = {"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
#: answers 200 once the server takes requests
HEALTH_PATH = "/moto-api/"


def server_command(host: str, port: int) -> list[str]:
    """The command line of moto's server on `host:port`."""
    return [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]


def client_env(endpoint: str) -> dict[str, str]:
    """The `AWS_*` variables that point an SDK at the emulator."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, **CREDENTIALS}

"""Running the real `pyinfra` CLI on `@shopstack` hosts in tests: an inventory written from a dict of host
data, a deploy file, and the run's JSON results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

REPO = Path(__file__).resolve().parents[2]
PYINFRA = Path(sys.executable).with_name("pyinfra")
LOCAL_INVENTORY = REPO / "inventory" / "local.py"
ACCOUNT_ID = "123456789012"


def emulator_data(endpoint: str, **extra: Any) -> dict[str, Any]:
    """Host data for a deploy against the AWS emulator at `endpoint` (no cluster access)."""
    return {
        "stage": "local",
        "account_id": ACCOUNT_ID,
        "aws_endpoint_url": endpoint,
        "static_credentials": ["testing", "testing"],
        "state_bucket_tls_only": False,
        **extra,
    }


def emulator_client(endpoint: str, service: str) -> Any:
    """A boto3 client of `service` at the AWS emulator `endpoint`, with its fixed credentials."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def results(self) -> dict[str, Any]:
        """`--json`'s document (its last JSON object on stdout)."""
        start = self.stdout.find("{")
        if start < 0:
            raise AssertionError(f"no JSON in pyinfra's output:\n{self.output}")
        return json.loads(self.stdout[start:])  # type: ignore[no-any-return]

    def planned_changes(self) -> list[str]:
        """A `--dry --json` run's operations that would change something, by name, in order."""
        return [op["name"] for op in self.results()["plan"] if op["hosts_with_change"]]

    def changed(self) -> list[str]:
        """A `--json` run's operations that changed something, by name, in order."""
        results = self.results()["results"]
        return [op["name"] for op in results["operations"] if op["success"]]


def run_pyinfra(
    workdir: Path,
    data: dict[str, Any] | Path,
    deploy: str | Path,
    *args: str,
    name: str = "test",
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> Run:
    """`pyinfra -y INVENTORY DEPLOY ARGS` with one host `@shopstack/<name>` holding `data` (without `-y` when
    `--dry` is among `args`: `-y` skips the change detection a dry run is for).

    `data` may instead be an inventory file (such as `inventory/local.py`), and `env` adds variables.
    `deploy` is a path or the source of a deploy file (written to `workdir`). The run's working directory is
    the repository, so `deploy.py` and `infra` import as they do for users.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if isinstance(data, Path):
        inventory = data
    else:
        inventory = workdir / f"inventory_{name}.py"
        host = f"@shopstack/{name}"
        inventory.write_text(f"import json\nhosts = [({host!r}, json.loads({json.dumps(data)!r}))]\n")
    if isinstance(deploy, str):
        path = workdir / f"deploy_{name}.py"
        path.write_text(deploy)
        deploy = path
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    completed = subprocess.run(
        [str(PYINFRA), *([] if "--dry" in args else ["-y"]), str(inventory), str(deploy), *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": python_path, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


def local_pyinfra(env: dict[str, str], *args: str, timeout: float = 600) -> Run:
    """`pyinfra -y inventory/local.py ARGS` (an ad-hoc operation, a fact, a deploy), as a user runs it from
    the repository, with `env` added (the local cloud's state directory, a settings file)."""
    done = subprocess.run(
        [str(PYINFRA), "-y", str(LOCAL_INVENTORY), *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)

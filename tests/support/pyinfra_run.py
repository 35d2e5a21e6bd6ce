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

REPO = Path(__file__).resolve().parents[2]
PYINFRA = Path(sys.executable).with_name("pyinfra")
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


def run_pyinfra(
    workdir: Path,
    data: dict[str, Any],
    deploy: str | Path,
    *args: str,
    name: str = "test",
    timeout: float = 600,
) -> Run:
    """`pyinfra -y INVENTORY DEPLOY ARGS` with one host `@shopstack/<name>` holding `data` (without `-y` when
    `--dry` is among `args`: `-y` skips the change detection a dry run is for).

    `deploy` is a path or the source of a deploy file (written to `workdir`). The run's working directory is
    the repository, so `deploy.py` and `infra` import as they do for users.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = workdir / f"inventory_{name}.py"
    inventory.write_text(
        f"import json\nhosts = [({f'@shopstack/{name}'!r}, json.loads({json.dumps(data)!r}))]\n"
    )
    if isinstance(deploy, str):
        path = workdir / f"deploy_{name}.py"
        path.write_text(deploy)
        deploy = path
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    completed = subprocess.run(
        [str(PYINFRA), *([] if "--dry" in args else ["-y"]), str(inventory), str(deploy), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)

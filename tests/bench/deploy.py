"""Benchmark: the whole deploy into a fresh local cloud, then the same deploy again (nothing to change).

    .tox/local/bin/python -m tests.bench.deploy [--runs 1]

Each run: the nine images built into a temporary directory (not timed), `python -m sim up` into a
temporary state directory on free ports, `pyinfra -y inventory/local.py deploy.py` timed from start to
exit (the first deploy: network, IAM, EKS, images, tables, every Kubernetes object and every rollout),
then the same command again (the no-op deploy); for each, the AWS and Kubernetes calls the run made (the
connector's summary line); then `python -m sim down`. Bounded: a fixed number of runs, loopback only,
everything stopped.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.images import build_images

REPO = Path(__file__).resolve().parents[2]
PYINFRA = Path(sys.executable).with_name("pyinfra")
CALLS = re.compile(r"(\d+) AWS calls, (\d+) Kubernetes calls")
FREE_PORTS = [f"--{name}-port=0" for name in ("aws", "alb", "alb-admin", "telemetry", "prometheus", "eks")]


def sim(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sim", *args], capture_output=True, text=True, timeout=180, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"python -m sim {args[0]} failed:\n{result.stdout}{result.stderr}")


def timed_deploy(env: dict[str, str]) -> tuple[float, int, int]:
    """Seconds, AWS calls and Kubernetes calls of one `pyinfra -y inventory/local.py deploy.py`."""
    began = time.monotonic()
    run = subprocess.run(
        [str(PYINFRA), "-y", "inventory/local.py", "deploy.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    elapsed = time.monotonic() - began
    calls = CALLS.search(run.stdout + run.stderr)
    if run.returncode != 0 or calls is None:
        raise SystemExit(f"the deploy failed ({run.returncode}):\n{(run.stdout + run.stderr)[-5000:]}")
    return elapsed, int(calls.group(1)), int(calls.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    rows: list[tuple[str, float, int, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as temporary:
        root = Path(temporary)
        build_images(root / "build")
        settings = root / "settings.toml"
        settings.write_text(f'build_dir = "{root / "build"}"\n')
        for run in range(args.runs):
            state = root / f"sim-{run}"
            sim("up", "--state-dir", str(state), *FREE_PORTS)
            env = {
                **os.environ,
                "PYTHONPATH": str(REPO),
                "SHOPSTACK_SIM_STATE": str(state),
                "SHOPSTACK_SETTINGS": str(settings),
            }
            try:
                rows.append(("first", *timed_deploy(env)))
                rows.append(("no-op", *timed_deploy(env)))
            finally:
                sim("down", "--state-dir", str(state))
    print("| deploy | seconds | AWS calls | Kubernetes calls |")
    print("|---|---|---|---|")
    for kind, seconds, aws, kube in rows:
        print(f"| {kind} | {seconds:.1f} | {aws} | {kube} |")


if __name__ == "__main__":
    main()

"""Benchmark: the local cloud's `up` to all-healthy, and its memory with nothing deployed.

    .venv/bin/python -m tests.bench.cloud_up [--runs 3]

Each run: `python -m sim up` into a temporary state directory on free ports (never the fixed defaults),
timed until it returns with every component healthy; then the RSS of every process of that cloud (found
by its marker, as `down` finds them), per component and in all; then `python -m sim down`. Bounded: a
fixed number of runs, everything on 127.0.0.1, everything stopped.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sim.supervisor.state import marked_processes, read_state

FREE_PORTS = [
    "--aws-port=0",
    "--alb-port=0",
    "--alb-admin-port=0",
    "--telemetry-port=0",
    "--prometheus-port=0",
    "--eks-port=0",
]


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def one_run(state: Path) -> tuple[float, dict[str, float], float]:
    began = time.monotonic()
    up = subprocess.run(
        [sys.executable, "-m", "sim", "up", "--state-dir", str(state), *FREE_PORTS],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    elapsed = time.monotonic() - began
    try:
        if up.returncode != 0:
            raise SystemExit(f"sim up failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
        time.sleep(2)  # let the components settle after their first health answer
        recorded = read_state(state)
        leaders = {c.pid: c.name for c in (recorded.components if recorded else []) if c.pid}
        per_component = {name: rss_mib(pid) for pid, name in leaders.items()}
        total = sum(rss_mib(pid) for pid in marked_processes(state))
        return elapsed, per_component, total
    finally:
        subprocess.run(
            [sys.executable, "-m", "sim", "down", "--state-dir", str(state)],
            capture_output=True,
            timeout=120,
            check=False,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times: list[float] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-cloud-") as temporary:
            elapsed, per_component, total = one_run(Path(temporary) / "state")
        times.append(elapsed)
        parts = ", ".join(f"{name} {mib:.0f}" for name, mib in sorted(per_component.items()))
        print(f"run {run + 1}: up to all-healthy {elapsed:.2f}s; RSS MiB: {parts}; all processes {total:.0f}")
    print(f"up to all-healthy: median {statistics.median(times):.2f}s over {len(times)} runs")


if __name__ == "__main__":
    main()

"""Benchmark: blue-green releases into a running local cloud under a steady mixed load through the ALB.

    .tox/local/bin/python -m tests.bench.release

The nine images are built twice (not timed; the second build another revision, so every digest differs),
`python -m sim up` starts a cloud on free ports, the first build is deployed, then, under `MixedLoad`
(4 shoppers browsing and buying), two releases are timed: one service (frontend-proxy, the ALB's) and all
nine. For each: deploy start → traffic switched (the deploy's "switch traffic" step done) → deploy done
(old colours at zero) → the old colours' pods gone (they drain first), and the requests served and failed
meanwhile. Bounded: two releases, one load of at most 20 minutes, loopback only, everything stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightkube import Client
from lightkube.config.kubeconfig import KubeConfig
from lightkube.resources.core_v1 import Pod, Service

from infra.model import SERVICE_NAMES
from infra.model.release import COLOUR_LABEL
from tests.bench.deploy import FREE_PORTS, PYINFRA, REPO, sim
from tests.integration.load import MixedLoad
from tests.support.images import build_images

SWITCHED = re.compile(r"Starting operation: Releases: old colours drain")


def mixed_build(into: Path, base: Path, newer: Path, services: list[str]) -> Path:
    """A build directory holding `newer`'s images for `services` and `base`'s for the rest."""
    images = json.loads((base / "images.json").read_text())
    newer_images = json.loads((newer / "images.json").read_text())
    (into / "oci").mkdir(parents=True)
    for service in images:
        source = newer if service in services else base
        images[service] = (newer_images if service in services else images)[service]
        shutil.copytree(source / "oci" / service, into / "oci" / service, symlinks=True)
    (into / "images.json").write_text(json.dumps(images, indent=2))
    return into


def old_pods(client: Client, namespace: str, colours: dict[str, str]) -> int:
    """Pods still running of each service's colour that is no longer live."""
    count = 0
    for service, live in colours.items():
        old = "blue" if live == "green" else "green"
        labels = {"app.kubernetes.io/name": service, COLOUR_LABEL: old}
        count += len(list(client.list(Pod, namespace=namespace, labels=labels)))
    return count


def live_colours(client: Client, namespace: str) -> dict[str, str]:
    colours = {}
    for service in SERVICE_NAMES:
        spec = client.get(Service, service, namespace=namespace).spec
        colours[service] = str(((spec.selector if spec else None) or {}).get(COLOUR_LABEL, "blue"))
    return colours


def release(env: dict[str, str], build: Path, load: MixedLoad, client: Client) -> dict[str, float]:
    began = time.monotonic()
    started_at = time.time()
    process = subprocess.Popen(
        [str(PYINFRA), "-y", "inventory/local.py", "deploy.py", "--data", f"build_dir={build}"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    switched = 0.0
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if not switched and SWITCHED.search(line):
            switched = time.monotonic() - began
    if process.wait() != 0:
        raise SystemExit("the release failed:\n" + "".join(output)[-5000:])
    deployed = time.monotonic() - began
    colours = live_colours(client, "shopstack")
    while old_pods(client, "shopstack", colours):
        time.sleep(0.5)
    gone = time.monotonic() - began
    during = [a for a in load.since(started_at) if a.at <= started_at + gone]
    failed = [a for a in during if not 200 <= a.status < 400]
    return {
        "switched": switched,
        "deployed": deployed,
        "gone": gone,
        "requests": len(during),
        "failed": len(failed),
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-release-") as temporary:
        root = Path(temporary)
        build_images(root / "base")
        newer = [
            "--out",
            str(root / "newer"),
            "--revision",
            "bench-2",
            "--store",
            str(root / "base" / "store"),
        ]
        subprocess.run(
            [sys.executable, "-m", "containers", "build", *newer],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        one = mixed_build(root / "one", root / "base", root / "newer", ["frontend-proxy"])
        state = root / "sim"
        sim("up", "--state-dir", str(state), *FREE_PORTS)
        env = {**os.environ, "PYTHONPATH": str(REPO), "SHOPSTACK_SIM_STATE": str(state)}
        try:
            first = subprocess.run(
                [
                    str(PYINFRA),
                    "-y",
                    "inventory/local.py",
                    "deploy.py",
                    "--data",
                    f"build_dir={root / 'base'}",
                ],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if first.returncode != 0:
                raise SystemExit(f"the first deploy failed:\n{(first.stdout + first.stderr)[-5000:]}")
            cloud = json.loads((state / "cloud.json").read_text())
            alb = next(c["address"] for c in cloud["components"] if c["name"] == "alb")
            config = KubeConfig.from_file(state / "eks" / "kubeconfig" / "shopstack")
            client = Client(config=config, namespace="shopstack")
            rows = []
            with MixedLoad(alb, shoppers=4, max_seconds=1200) as load:
                time.sleep(10)
                rows.append(("one service (frontend-proxy)", release(env, one, load, client)))
                rows.append(("all nine", release(env, root / "newer", load, client)))
        finally:
            sim("down", "--state-dir", str(state))
    print("| release | traffic switched | deploy done | old pods gone | requests served | failed |")
    print("|---|---|---|---|---|---|")
    for what, row in rows:
        print(
            f"| {what} | {row['switched']:.1f} s | {row['deployed']:.1f} s | {row['gone']:.1f} s "
            f"| {row['requests']:.0f} | {row['failed']:.0f} |"
        )


if __name__ == "__main__":
    main()

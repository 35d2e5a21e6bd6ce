"""`python -m sim.standins.alertmanager --listen IP:PORT -- BINARY ARGS...`: Debian's
`prometheus-alertmanager` in place of Alertmanager's image.

The config the pod mounts (`--config.file`) is used as it is, but for the URLs of its webhook receivers
that name a cluster Service (`http://alert-receiver.shopstack.svc:8080/alerts`): the binary cannot resolve
those here, so this wrapper resolves them (as the pod's DNS would, through the cluster's records) and writes
the config with their addresses into the stand-in's root. It listens on the pod's address. Gossip
clustering is not implemented (one replica): the args must turn it off (`--cluster.listen-address=`), or
the stand-in refuses in one line. Then it becomes the binary.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sim.standins.binaries import StandInError, flag_value, resolve_url, with_listen, without_flag

CONFIG_FLAG = "--config.file"
CLUSTER_FLAG = "--cluster.listen-address"


def rewrite(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with each webhook receiver's cluster-name URL resolved to the Service's address."""
    for receiver in config.get("receivers") or []:
        for webhook in receiver.get("webhook_configs") or []:
            if isinstance(webhook.get("url"), str):
                webhook["url"] = resolve_url(webhook["url"])
    return config


def prepare(command: list[str], listen: str, workdir: Path) -> list[str]:
    """The binary's argv: the pod's listen address, the config with resolved receivers."""
    binary, args = command[0], command[1:]
    cluster = flag_value(args, CLUSTER_FLAG)
    if cluster is None or cluster != "":
        raise StandInError(
            f"gossip clustering is not implemented (one replica): give {CLUSTER_FLAG}= to turn it off"
        )
    source = flag_value(args, CONFIG_FLAG)
    if source is None:
        raise StandInError(f"no {CONFIG_FLAG}: the image's default config is not in the stand-in")
    try:
        config = yaml.safe_load(Path(source).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise StandInError(f"cannot read {source}: {err}") from None
    target = workdir / "alertmanager.yml"
    target.write_text(yaml.safe_dump(rewrite(config), sort_keys=False))
    args = [*without_flag(args, CONFIG_FLAG), f"{CONFIG_FLAG}={target}"]
    return [binary, *with_listen(args, listen)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.standins.alertmanager", description=__doc__)
    parser.add_argument("--listen", required=True, help="the pod's HOST:PORT")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the binary and the container's args")
    args = parser.parse_args(argv)
    command = [arg for arg in args.command if arg != "--"]
    if not command:
        print("standin_alertmanager: no binary after --", file=sys.stderr)
        return 2
    try:
        final = prepare(command, args.listen, Path.cwd())
    except StandInError as err:
        print(f"standin_alertmanager: {err}", file=sys.stderr)
        return 2
    os.execv(final[0], final)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

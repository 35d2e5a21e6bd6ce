"""`python -m sim up|status|down`: start, inspect and stop the local cloud (see sim/supervisor/cloud.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sim.supervisor.cloud import CloudConfig, Supervisor
from sim.supervisor.state import StateDirUnusable, check_state_dir

#: what argparse exits with for a bad argument
EXIT_USAGE = 2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sim", description="The offline local cloud: AWS emulator, EKS, ALB, telemetry."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the local cloud and wait until it is healthy")
    status = commands.add_parser("status", help="each component's address and health (exit 3: none runs)")
    down = commands.add_parser("down", help="stop everything the local cloud started")
    for command in (up, status, down):
        command.add_argument("--state-dir", type=Path, default=Path(".sim"), help="default: %(default)s")
    defaults = CloudConfig(Path(".sim"))
    for option, port in (
        ("--aws-port", defaults.aws_port),
        ("--alb-port", defaults.alb_port),
        ("--alb-admin-port", defaults.alb_admin_port),
        ("--telemetry-port", defaults.telemetry_port),
        ("--prometheus-port", defaults.prometheus_port),
        ("--eks-port", defaults.eks_port),
    ):
        up.add_argument(option, type=int, default=port, help="default: %(default)s (0: a free port)")
    up.add_argument(
        "--eks-address-blocks",
        default=defaults.eks_address_blocks,
        metavar="FIRST-LAST",
        help="the 127.N/16 blocks of the clusters' pods and Services (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = CloudConfig(args.state_dir)
    if args.command == "up":
        config = CloudConfig(
            args.state_dir,
            aws_port=args.aws_port,
            eks_port=args.eks_port,
            alb_port=args.alb_port,
            alb_admin_port=args.alb_admin_port,
            telemetry_port=args.telemetry_port,
            prometheus_port=args.prometheus_port,
            eks_address_blocks=args.eks_address_blocks,
        )
    supervisor = Supervisor(config)
    try:
        check_state_dir(config.state_dir)
        if args.command == "up":
            return supervisor.up()
        if args.command == "status":
            return supervisor.status()
        return supervisor.down()
    except StateDirUnusable as err:
        print(f"python -m sim {args.command}: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

"""`python -m sim.eks`: the EKS binding, until SIGTERM or SIGINT; then every cluster and pod is stopped
and `clusters.json` removed."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from services.common.signals import stop_on_signals
from sim.eks.admin import AdminApp
from sim.eks.binding import ADDRESS_BLOCKS, EksBinding
from sim.serving import serve

DEFAULT_PORT = 4580
ADMIN_GRACEFUL_TIMEOUT_SECONDS = 1.0
IMAGE_STORE_VARIABLE = "SHOPSTACK_IMAGE_STORE"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sim.eks",
        description="Run a local Kubernetes for each EKS cluster in the AWS emulator.",
    )
    parser.add_argument("--aws-endpoint", required=True, help="the AWS emulator's URL")
    parser.add_argument("--state-dir", type=Path, required=True, help="kubeconfigs and clusters.json go here")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port of /healthz and /clusters (default: %(default)s)"
    )
    parser.add_argument(
        "--image-store",
        type=Path,
        default=None,
        help=f"the nodes' image store (default: ${IMAGE_STORE_VARIABLE}, else STATE_DIR/images)",
    )
    parser.add_argument(
        "--address-blocks",
        default=f"{ADDRESS_BLOCKS.start}-{ADDRESS_BLOCKS.stop - 1}",
        metavar="FIRST-LAST",
        help="cluster N gets 127.B.0.0/16 for the Nth free B in this range (default: %(default)s)",
    )
    parser.add_argument(
        "--alb-admin-url",
        default=None,
        help="the ALB data plane's admin URL, for the clusters' pod readiness gates",
    )
    parser.add_argument("--log-level", default="INFO", help="log level (default: %(default)s)")
    args = parser.parse_args(argv)
    first, _, last = args.address_blocks.partition("-")
    if not (first.isdigit() and last.isdigit() and 1 <= int(first) <= int(last) <= 254):
        parser.error(f"--address-blocks takes FIRST-LAST within 1-254, not {args.address_blocks!r}")
    args.address_blocks = range(int(first), int(last) + 1)
    # the clusters' kubelets hand paths under these to processes that run in other directories
    args.state_dir = args.state_dir.absolute()
    if args.image_store is None:
        from_env = os.environ.get(IMAGE_STORE_VARIABLE)
        args.image_store = Path(from_env) if from_env else args.state_dir / "images"
    args.image_store = args.image_store.absolute()
    return args


async def run(args: argparse.Namespace) -> None:
    stop = stop_on_signals()
    args.image_store.mkdir(parents=True, exist_ok=True)
    binding = EksBinding(
        args.aws_endpoint,
        args.state_dir,
        args.image_store,
        args.host,
        args.address_blocks,
        alb_admin_url=args.alb_admin_url,
    )
    admin = asyncio.create_task(
        serve(AdminApp(binding.describe), args.host, args.port, ADMIN_GRACEFUL_TIMEOUT_SECONDS, stop.wait)
    )
    try:
        await binding.run(stop)
    finally:
        stop.set()
        await admin


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s [%(name)s] %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness probe otherwise
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

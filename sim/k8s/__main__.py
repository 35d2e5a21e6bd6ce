"""`python -m sim.k8s`: serve the Kubernetes API emulator until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from sim.k8s.app import KubeApp
from sim.k8s.kubeconfig import write_kubeconfig
from sim.k8s.store import Store
from sim.serving import serve_until_signalled

GRACEFUL_TIMEOUT_SECONDS = 1.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sim.k8s", description="The local Kubernetes API server.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=6443, help="port to bind (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep objects here across restarts")
    parser.add_argument(
        "--kubeconfig", type=Path, default=None, help="write a kubeconfig for this server here"
    )
    parser.add_argument(
        "--graceful-pods",
        action="store_true",
        help="keep deleted pods that are bound to a node until a kubelet confirms (deletes with grace 0)",
    )
    parser.add_argument("--log-level", default="WARNING", help="log level (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s [%(name)s] %(message)s"
    )
    store = Store(data_dir=args.data_dir, graceful_pods=args.graceful_pods)
    app = KubeApp(store)
    if args.kubeconfig is not None:
        write_kubeconfig(args.kubeconfig, f"http://{args.host}:{args.port}")
    serve_until_signalled(app, args.host, args.port, GRACEFUL_TIMEOUT_SECONDS)


if __name__ == "__main__":
    main()

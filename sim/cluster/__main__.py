"""`python -m sim.cluster`: serve a local Kubernetes (the API server, its controllers and its nodes)
until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sim.cluster import ClusterConfig, LocalCluster
from sim.controllers.manager import Timings
from sim.k8s.defaults import DEFAULT_SERVICE_CIDR
from sim.k8s.kubeconfig import write_kubeconfig
from sim.serving import serve_until_signalled

GRACEFUL_TIMEOUT_SECONDS = 1.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sim.cluster",
        description="A local Kubernetes: the API server, its controllers and its nodes.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=6443, help="port to bind (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep objects here across restarts")
    parser.add_argument(
        "--kubeconfig", type=Path, default=None, help="write a kubeconfig for this server here"
    )
    parser.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="NAME",
        help="run a node agent (a process kubelet) for node NAME; repeatable",
    )
    parser.add_argument("--image-store", type=Path, default=None, help="the nodes' image store directory")
    parser.add_argument(
        "--pod-cidr",
        default="127.1.0.0/16",
        help="pod IPs come from here, inside 127.0.0.0/8 (default: %(default)s)",
    )
    parser.add_argument(
        "--service-cidr",
        default=DEFAULT_SERVICE_CIDR,
        help="Service ClusterIPs come from here, inside 127.0.0.0/8 (default: %(default)s)",
    )
    parser.add_argument(
        "--node-capacity",
        action="append",
        default=[],
        metavar="RESOURCE=QUANTITY",
        help="a node's capacity and allocatable, e.g. memory=8Gi (default: cpu=2, memory=4Gi, pods=17)",
    )
    parser.add_argument(
        "--kubelet-dir",
        type=Path,
        default=None,
        help="the nodes' logs and volumes (default: a temporary directory)",
    )
    defaults = Timings()
    parser.add_argument(
        "--hpa-sync-period",
        type=float,
        default=defaults.hpa_sync_seconds,
        metavar="SECONDS",
        help="how often autoscalers sample their pods (default: %(default)s)",
    )
    parser.add_argument(
        "--node-monitor-grace-period",
        type=float,
        default=defaults.node_grace_seconds,
        metavar="SECONDS",
        help="a node silent this long turns NotReady (default: %(default)s)",
    )
    parser.add_argument(
        "--pod-eviction-timeout",
        type=float,
        default=defaults.pod_eviction_seconds,
        metavar="SECONDS",
        help="the pods of a NotReady node are evicted after this (default: %(default)s)",
    )
    parser.add_argument(
        "--aws-endpoint", default=None, help="run the ALB controller against this AWS emulator URL"
    )
    parser.add_argument(
        "--cluster-name",
        default="local",
        help="the name AWS resources are tagged with (default: %(default)s)",
    )
    parser.add_argument(
        "--alb-admin-url",
        default=None,
        help="the ALB data plane's admin URL, for pod readiness gates (with --aws-endpoint)",
    )
    parser.add_argument("--log-level", default="WARNING", help="log level (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.node and args.image_store is None:
        parser.error("--node needs --image-store")
    for item in args.node_capacity:
        if "=" not in item:
            parser.error(f"--node-capacity takes RESOURCE=QUANTITY, not {item!r}")
    for name in ("hpa_sync_period", "node_monitor_grace_period", "pod_eviction_timeout"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    timings = Timings(args.hpa_sync_period, args.node_monitor_grace_period, args.pod_eviction_timeout)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s [%(name)s] %(message)s"
    )
    try:
        serve(args, timings)
    except ValueError as err:  # a configuration the cluster refuses (e.g. overlapping CIDRs)
        sys.exit(f"python -m sim.cluster: error: {err}")


def serve(args: argparse.Namespace, timings: Timings) -> None:
    with contextlib.ExitStack() as stack:
        kubelet_dir = args.kubelet_dir
        if args.node and kubelet_dir is None:
            kubelet_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kubelet-")))
        config = ClusterConfig(
            nodes=args.node,
            image_store=args.image_store,
            kubelet_dir=kubelet_dir,
            data_dir=args.data_dir,
            pod_cidr=args.pod_cidr,
            service_cidr=args.service_cidr,
            capacity=dict(item.split("=", 1) for item in args.node_capacity),
            timings=timings,
            aws_endpoint=args.aws_endpoint,
            cluster_name=args.cluster_name,
            api_url=f"http://{args.host}:{args.port}",
            alb_admin_url=args.alb_admin_url,
        )
        cluster = LocalCluster(config)
        if args.kubeconfig is not None:
            write_kubeconfig(args.kubeconfig, f"http://{args.host}:{args.port}")
        serve_until_signalled(cluster.app, args.host, args.port, GRACEFUL_TIMEOUT_SECONDS)


if __name__ == "__main__":
    main()

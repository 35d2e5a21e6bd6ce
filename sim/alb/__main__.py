"""`python -m sim.alb`: the ALB data plane, serving the emulator's ALBs on loopback until SIGTERM/SIGINT.

Listener port 80 of every ALB is served on `--port`; `--listener LISTENER=LOCAL` serves another listener
port on another local port (repeatable). `/healthz` (200 once the emulator was read) and `/targets` are on
`--admin-port`, apart from the ALBs' routes. `--time-scale` shortens the target groups' health-check
times (a tenth of AWS's by default: a 15 s check interval is 1.5 s here), not their deregistration delays.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from sim.alb.dataplane import ConnectionCut, DataPlane
from sim.aws import DEFAULT_PORT
from sim.serving import ERROR_LOG, serve_until_signalled

GRACEFUL_TIMEOUT_SECONDS = 5.0
KEEP_ALIVE_SECONDS = 65.0  # an ALB's default idle timeout is 60 s: clients close first


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sim.alb", description="The local ALB data plane.")
    parser.add_argument(
        "--aws-endpoint",
        default=f"http://127.0.0.1:{DEFAULT_PORT}",
        help="the AWS emulator (default: %(default)s)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8080, help="local port of listener port 80 (default: %(default)s)"
    )
    parser.add_argument(
        "--listener",
        action="append",
        default=[],
        metavar="LISTENER=LOCAL",
        help="serve ALB listener port LISTENER on local port LOCAL; repeatable",
    )
    parser.add_argument("--admin-port", type=int, required=True, help="port of /healthz and /targets")
    parser.add_argument(
        "--access-log", type=Path, default=None, help="append an access log line per request here"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.5, help="seconds between reads of the emulator"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.1,
        help="health-check intervals and timeouts are the target group's times this; 1 for AWS's own "
        "(default: %(default)s)",
    )
    parser.add_argument("--log-level", default="WARNING", help="log level (default: %(default)s)")
    args = parser.parse_args(argv)
    args.listeners = {args.port: 80}
    for item in args.listener:
        listener, _, local = item.partition("=")
        if not (listener.isdigit() and local.isdigit()):
            parser.error(f"--listener takes LISTENER=LOCAL port numbers, not {item!r}")
        args.listeners[int(local)] = int(listener)
    if args.admin_port in args.listeners:
        parser.error("--admin-port must differ from the listener ports")
    if args.time_scale <= 0:
        parser.error("--time-scale must be positive")
    return args


class _CutsAreNoErrors(logging.Filter):
    """Hypercorn logs an exception out of the app as an error: a `ConnectionCut` is the data plane's own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionCut))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s [%(name)s] %(message)s"
    )
    app = DataPlane(
        args.aws_endpoint,
        args.listeners,
        args.admin_port,
        access_log=args.access_log,
        poll_interval=args.poll_interval,
        time_scale=args.time_scale,
    )
    ERROR_LOG.addFilter(_CutsAreNoErrors())
    serve_until_signalled(
        app,
        args.host,
        [*args.listeners, args.admin_port],
        GRACEFUL_TIMEOUT_SECONDS,
        keep_alive_seconds=KEEP_ALIVE_SECONDS,
    )


if __name__ == "__main__":
    main()

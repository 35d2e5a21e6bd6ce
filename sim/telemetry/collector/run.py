"""A collector distribution's process, as its image runs it: `--config=FILE` (the image's own flag; a
`file:` URI too), plus the stand-in's `--listen-address` (the pod's address, which `0.0.0.0` means
here). `validate` checks the configuration and exits, as `otelcol validate` does. A configuration the
stand-in refuses, or a port it cannot listen on, ends it with exit status 1 and one line on stderr
(`Error: ...`); SIGTERM or SIGINT shut it down gracefully (receivers first, queued data flushed).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from sim.telemetry.collector import config as config_file
from sim.telemetry.collector.components import Distribution, Host
from sim.telemetry.collector.config import ConfigError
from sim.telemetry.collector.servers import ListenError
from sim.telemetry.collector.service import Service, build

LOG_FORMAT = "%(asctime)s\t%(levelname)s\t%(message)s"


def parse_args(distribution: Distribution, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"{distribution.name} (stand-in)",
        description=f"The local cloud's stand-in for {distribution.name}: runs a collector configuration.",
    )
    parser.add_argument("command", nargs="?", choices=("validate",), help="check the configuration and exit")
    parser.add_argument("--config", action="append", default=[], help="the configuration file (once)")
    parser.add_argument("--listen-address", default="127.0.0.1", help="the address 0.0.0.0 means (the pod's)")
    parser.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--feature-gates", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def load(distribution: Distribution, args: argparse.Namespace) -> Service:
    if not args.config:
        raise ConfigError(
            "no --config: the image's built-in configuration is not implemented by the stand-in"
        )
    if len(args.config) > 1:
        raise ConfigError("more than one --config: merging files is not implemented by the stand-in")
    if args.set or args.feature_gates:
        flag = "--set" if args.set else "--feature-gates"
        raise ConfigError(f"{flag} is not implemented by the stand-in")
    parsed = config_file.load(config_file.config_path(args.config[0]), os.environ)
    return build(parsed, distribution, Host(args.listen_address))


def main(distribution: Distribution, argv: Sequence[str] | None = None) -> int:
    args = parse_args(distribution, argv)
    try:
        service = load(distribution, args)
    except ConfigError as err:
        print(f"Error: invalid configuration: {err}", file=sys.stderr)
        return 1
    if args.command == "validate":
        return 0
    logging.basicConfig(level=service.log_level, format=LOG_FORMAT, stream=sys.stderr)
    try:
        asyncio.run(_run(distribution, service))
    except (ListenError, OSError) as err:
        print(f"Error: cannot start pipelines: {err}", file=sys.stderr)
        return 1
    return 0


async def _run(distribution: Distribution, service: Service) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    logging.getLogger("otelcol").info(
        "%s (stand-in): everything is ready. Begin running and processing data.", distribution.name
    )
    try:
        await stop.wait()
    finally:
        logging.getLogger("otelcol").info("received signal, shutting down")
        await service.shutdown()

"""`python -m sim.telemetry`: serve the OTLP/HTTP receiver and its query API until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from sim.serving import serve_until_signalled
from sim.telemetry.app import DEFAULT_MAX_BODY_BYTES, create_app
from sim.telemetry.store import (
    DEFAULT_MAX_LOGS,
    DEFAULT_MAX_METRIC_POINTS,
    DEFAULT_MAX_SPANS,
    TelemetryStore,
)

GRACEFUL_TIMEOUT_SECONDS = 2.0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sim.telemetry",
        description="The local cloud's OpenTelemetry Collector stand-in: OTLP/HTTP in, a JSON query API out.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=4318, help="port to bind (default: %(default)s)")
    parser.add_argument("--max-spans", type=_positive, default=DEFAULT_MAX_SPANS, help="spans kept")
    parser.add_argument(
        "--max-metric-points",
        type=_positive,
        default=DEFAULT_MAX_METRIC_POINTS,
        help="metric data points kept",
    )
    parser.add_argument("--max-logs", type=_positive, default=DEFAULT_MAX_LOGS, help="log records kept")
    parser.add_argument(
        "--max-body-bytes",
        type=_positive,
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest export body, before and after decompression (default: %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO", help="log level (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s [%(name)s] %(message)s"
    )
    store = TelemetryStore(args.max_spans, args.max_metric_points, args.max_logs)
    app = create_app(store, max_body_bytes=args.max_body_bytes)
    serve_until_signalled(app, args.host, args.port, GRACEFUL_TIMEOUT_SECONDS)


if __name__ == "__main__":
    main()

"""`python -m services.<name>`: serve a service's app with hypercorn until SIGTERM or SIGINT.

On the signal, a drain in progress answers at once and every response from then on closes its
connection (see `services.common.draining`); hypercorn stops accepting connections, lets in-flight
requests finish (up to `SHUTDOWN_TIMEOUT_SECONDS`), then the app's after-serving hooks close clients,
commit consumer offsets and flush telemetry.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from hypercorn.asyncio import serve
from hypercorn.config import Config

from services.common.app import ServiceApp
from services.common.config import ConfigError, ServiceSettings
from services.common.flags import FlagsNotReady
from services.common.signals import stop_on_signals
from services.common.telemetry import setup_telemetry

S = TypeVar("S", bound=ServiceSettings)

#: How long an idle keep-alive connection stays open: longer than an ALB's idle timeout (60 s, AWS's advice
#: for targets) and than the callers' pools keep one (httpx: 5 s), so the caller always closes an idle
#: connection first. At hypercorn's default (5 s) a caller could send a request on a connection just as the
#: server closes it, and a POST met that way fails: it cannot be safely sent again.
KEEP_ALIVE_SECONDS = 75.0


def run(name: str, create_app: Callable[[S], ServiceApp], settings_type: type[S]) -> NoReturn:
    """Read the settings, build the app and serve it; a bad configuration exits 2 with one line.

    A service takes no arguments, only environment variables: `--help` lists them with their defaults.
    """
    if len(sys.argv) > 1:
        help_asked = sys.argv[1:] in (["-h"], ["--help"])
        print(usage(name, settings_type), file=sys.stdout if help_asked else sys.stderr)
        sys.exit(0 if help_asked else 2)
    try:
        settings = settings_type.from_env()
        app = create_app(settings)
    except (ConfigError, FlagsNotReady) as err:
        print(f"{name}: {err}", file=sys.stderr)
        sys.exit(2)
    config = Config()
    config.bind = [f"{settings.bind_host}:{settings.port}"]
    config.graceful_timeout = settings.shutdown_timeout_seconds
    config.keep_alive_timeout = KEEP_ALIVE_SECONDS
    config.accesslog = None
    config.errorlog = "-"
    try:
        asyncio.run(_serve(app, config))
    finally:
        setup_telemetry(name).shutdown()
    sys.exit(0)


def usage(name: str, settings_type: type[ServiceSettings]) -> str:
    """What `--help` prints: the service's environment variables and their defaults."""
    lines = [f"usage: {name} (no arguments; configured by environment variables)", ""]
    for field_name, field in settings_type.model_fields.items():
        default = "required" if field.is_required() else f"default {field.default!r}"
        lines.append(f"  {field_name.upper():<34} {default}")
    return "\n".join(lines)


async def _serve(app: ServiceApp, config: Config) -> None:
    stop = stop_on_signals(app.drain.stop)
    await serve(app, config, shutdown_trigger=stop.wait)

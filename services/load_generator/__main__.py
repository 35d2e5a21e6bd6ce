"""`python -m services.load_generator`: Locust with the shop's users, until SIGTERM.

Configured as Locust is, by its own variables (or the same options on the command line; `--help` lists
them): `LOCUST_HOST` (the shop, e.g. http://frontend-proxy:8080), `LOCUST_USERS`, `LOCUST_SPAWN_RATE`,
`LOCUST_AUTOSTART` (start swarming at once, the web UI still up), `LOCUST_HEADLESS` (no web UI),
`LOCUST_RUN_TIME`, `LOCUST_WEB_PORT` (8089)... This module only adds defaults: the shop's locustfile, the
web UI on `$BIND_HOST` where that is set (as the services listen), and a gevent resolver that honours the
interpreter's own (`resolver`). `FLAGS_FILE` is the flags file whose `loadGeneratorFloodHomepage` the
users read; one that cannot be read stops the load generator at once with one line naming it (exit 2).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

NAME = "load-generator"
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
RESOLVER = "services.load_generator.resolver.Resolver"


def locust_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """The variables this module sets for Locust and gevent, where `env` does not set them already."""
    defaults = {"LOCUST_LOCUSTFILE": str(LOCUSTFILE), "GEVENT_RESOLVER": RESOLVER}
    if env.get("BIND_HOST"):
        defaults["LOCUST_WEB_HOST"] = env["BIND_HOST"]
    return {name: value for name, value in defaults.items() if not env.get(name)}


def flags_problem(env: Mapping[str, str]) -> str | None:
    """Why `FLAGS_FILE` cannot be used, or None (also when it is not set: the flood flag is then off)."""
    value = env.get("FLAGS_FILE")
    if not value:
        return None
    try:
        json.loads(Path(value).read_text())
    except OSError as err:
        return f"FLAGS_FILE {value} cannot be read: {err.strerror}"
    except ValueError as err:
        return f"FLAGS_FILE {value} is not JSON: {err}"
    return None


def main() -> None:
    problem = flags_problem(os.environ)
    if problem:
        print(f"{NAME}: {problem}", file=sys.stderr)
        sys.exit(2)
    os.environ.update(locust_defaults(os.environ))
    # Locust patches the standard library for gevent as it is imported: nothing may run threads before
    from locust.main import main as locust

    sys.argv[0] = "locust"
    locust()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()

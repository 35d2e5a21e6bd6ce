"""Where an image's files live, and the environment that lets Python find them.

The locked dependencies go to /opt/shopstack/site-packages (console scripts to /opt/shopstack/bin), the
service code to /app/services/...; PYTHONPATH names both, so the base image's interpreter and a host
interpreter running the unpacked layers (the local cloud) find the same files in the same order.
"""

from __future__ import annotations

PREFIX = "/opt/shopstack"
SITE_PACKAGES = f"{PREFIX}/site-packages"
SCRIPTS = f"{PREFIX}/bin"
APP = "/app"
INTERPRETER = "/usr/local/bin/python3"  # the base image's; console scripts' shebang
PATH = f"{SCRIPTS}:/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


def environment(port: int) -> list[str]:
    """The image's own environment variables (the base's come first in a full image)."""
    return [
        f"PATH={PATH}",
        f"PYTHONPATH={APP}:{SITE_PACKAGES}",
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        f"PORT={port}",
    ]

"""Serve frontend-proxy until SIGTERM (`python -m services.frontend_proxy`)."""

from services.common.serve import run
from services.frontend_proxy.app import Settings, create_app


def main() -> None:
    run("frontend-proxy", create_app, Settings)


if __name__ == "__main__":
    main()

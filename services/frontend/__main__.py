"""Serve frontend until SIGTERM (`python -m services.frontend`)."""

from services.common.serve import run
from services.frontend.app import Settings, create_app


def main() -> None:
    run("frontend", create_app, Settings)


if __name__ == "__main__":
    main()

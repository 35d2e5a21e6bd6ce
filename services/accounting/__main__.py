"""Serve accounting until SIGTERM (`python -m services.accounting`)."""

from services.accounting.app import Settings, create_app
from services.common.serve import run


def main() -> None:
    run("accounting", create_app, Settings)


if __name__ == "__main__":
    main()

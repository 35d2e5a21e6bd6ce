"""Serve payment until SIGTERM (`python -m services.payment`)."""

from services.common.serve import run
from services.payment.app import Settings, create_app


def main() -> None:
    run("payment", create_app, Settings)


if __name__ == "__main__":
    main()

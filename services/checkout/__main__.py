"""Serve checkout until SIGTERM (`python -m services.checkout`)."""

from services.checkout.app import Settings, create_app
from services.common.serve import run


def main() -> None:
    run("checkout", create_app, Settings)


if __name__ == "__main__":
    main()

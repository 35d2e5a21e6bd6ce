"""Serve recommendation until SIGTERM (`python -m services.recommendation`)."""

from services.common.serve import run
from services.recommendation.app import Settings, create_app


def main() -> None:
    run("recommendation", create_app, Settings)


if __name__ == "__main__":
    main()

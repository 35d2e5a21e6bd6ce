"""Serve fraud-detection until SIGTERM (`python -m services.fraud_detection`)."""

from services.common.serve import run
from services.fraud_detection.app import Settings, create_app


def main() -> None:
    run("fraud-detection", create_app, Settings)


if __name__ == "__main__":
    main()

"""Serve cart until SIGTERM (`python -m services.cart`)."""

from services.cart.app import Settings, create_app
from services.common.serve import run


def main() -> None:
    run("cart", create_app, Settings)


if __name__ == "__main__":
    main()

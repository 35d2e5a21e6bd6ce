"""Serve product-catalog until SIGTERM (`python -m services.product_catalog`)."""

from services.common.serve import run
from services.product_catalog.app import Settings, create_app


def main() -> None:
    run("product-catalog", create_app, Settings)


if __name__ == "__main__":
    main()

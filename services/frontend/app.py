"""frontend's app: the pages, the JSON API, the static files and the clients of the four peers."""

from __future__ import annotations

from pathlib import Path

from quart import Response, request
from werkzeug.exceptions import HTTPException

from services.common.app import ServiceApp, error_response
from services.common.config import ServiceSettings
from services.frontend.api import register_api
from services.frontend.pages import error_page, register_pages
from services.frontend.peers import Peers

PACKAGE_DIR = Path(__file__).parent


class Settings(ServiceSettings):
    product_catalog_url: str = "http://product-catalog:8080"
    recommendation_url: str = "http://recommendation:8080"
    cart_url: str = "http://cart:8080"
    checkout_url: str = "http://checkout:8080"


def create_app(settings: Settings | None = None) -> ServiceApp:
    settings = settings or Settings.from_env()
    app = ServiceApp("frontend", settings, title="Shopstack frontend")
    # The app is named by its service, not its package: point templates and /static/ at this package.
    app.root_path = str(PACKAGE_DIR)
    peers = Peers(
        settings.product_catalog_url, settings.recommendation_url, settings.cart_url, settings.checkout_url
    )

    @app.before_serving
    async def open_clients() -> None:
        for client in peers.clients():
            await app.enter(client)

    async def unrouted(error: HTTPException) -> Response | tuple[str, int]:
        """A URL or method no route takes: JSON under /api/, a page elsewhere."""
        status = error.code or 404
        if request.path.startswith("/api/"):
            return error_response(status, error.description or error.name)
        return await error_page(status, error.name, "There is no such page in the shop.")

    app.register_error_handler(404, unrouted)
    app.register_error_handler(405, unrouted)

    register_pages(app, peers)
    register_api(app, peers)
    return app

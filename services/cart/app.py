"""cart's HTTP API: read a cart, add to it, empty it."""

from __future__ import annotations

from opentelemetry import metrics, trace
from pydantic import Field
from quart import Response
from quart_schema import validate_request, validate_response

from services.cart.store import CartFull, CartStore, Line, LineFull
from services.common.app import ServiceApp, error_response, flags
from services.common.aws import dynamodb_resource
from services.common.config import ServiceSettings
from services.common.contracts import AddItem, Cart, CartLine, valid_user_id
from services.common.flag_contract import Flag
from services.common.openapi import answers, no_content

meter = metrics.get_meter(__name__)
units_added = meter.create_counter("app.cart.units_added", description="Units added to carts")


class Settings(ServiceSettings):
    cart_table: str = Field(min_length=3, max_length=255)


class InvalidUserId(Exception):
    """The user id in the path breaks the user id rule."""


def _cart(user_id: str, lines: list[Line]) -> Cart:
    trace.get_current_span().set_attribute("app.cart.items.count", len(lines))
    return Cart(
        user_id=user_id,
        items=[CartLine(product_id=line.product_id, quantity=line.quantity) for line in lines],
    )


def _checked(user_id: str) -> str:
    if not valid_user_id(user_id):
        raise InvalidUserId(user_id)
    trace.get_current_span().set_attribute("app.user.id", user_id)
    return user_id


def _cart_failure(action: str) -> Response | None:
    """The `cartFailure` answer, when the flag is on."""
    if flags().enabled(Flag.CART_FAILURE):
        return error_response(503, f"cart store unavailable: cannot {action} (cartFailure)")
    return None


def create_app(settings: Settings | None = None) -> ServiceApp:
    settings = settings or Settings.from_env()
    app = ServiceApp("cart", settings, title="Shopstack cart")
    store = CartStore(settings.cart_table)

    @app.before_serving
    async def open_store() -> None:
        await store.use(await app.enter(dynamodb_resource()))

    @app.readiness_check("dynamodb")
    async def table_reachable() -> None:
        await store.check()

    @app.readiness_check("failedReadinessProbe")
    async def readiness_flag_off() -> None:
        if app.flags.enabled(Flag.FAILED_READINESS_PROBE):
            raise RuntimeError("failing on purpose (failedReadinessProbe)")

    @app.errorhandler(InvalidUserId)
    async def invalid_user_id(error: InvalidUserId) -> Response:
        message = "must be 1 to 64 characters from A-Z, a-z, 0-9, _ and -"
        return error_response(400, "invalid user_id", [{"field": "user_id", "message": message}])

    @app.get("/carts/<id:user_id>")
    @answers(503)
    @validate_response(Cart)
    async def get_cart(user_id: str) -> Cart:
        return _cart(user_id, await store.lines(_checked(user_id)))

    @app.post("/carts/<id:user_id>/items")
    @answers(503)
    @validate_request(AddItem)
    @validate_response(Cart)
    async def add_item(user_id: str, data: AddItem):  # type: ignore[no-untyped-def]
        _checked(user_id)
        trace.get_current_span().set_attributes(
            {"app.product.id": data.product_id, "app.product.quantity": data.quantity}
        )
        if failure := _cart_failure("add an item"):
            return failure
        try:
            lines = await store.add(user_id, data.product_id, data.quantity)
        except CartFull as err:
            return error_response(400, str(err), [{"field": "product_id", "message": str(err)}])
        except LineFull as err:
            return error_response(400, str(err), [{"field": "quantity", "message": str(err)}])
        units_added.add(data.quantity)
        return _cart(user_id, lines)

    @app.delete("/carts/<id:user_id>")
    @no_content
    @answers(503)
    async def empty_cart(user_id: str) -> Response | tuple[str, int]:
        _checked(user_id)
        if failure := _cart_failure("empty the cart"):
            return failure
        await store.empty(user_id)
        return "", 204

    return app

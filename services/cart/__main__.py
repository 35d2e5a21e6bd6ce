from services.cart.app import Settings, create_app
from services.common.serve import run

run("cart", create_app, Settings)

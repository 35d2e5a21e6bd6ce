from services.checkout.app import Settings, create_app
from services.common.serve import run

run("checkout", create_app, Settings)

from services.common.serve import run
from services.payment.app import Settings, create_app

run("payment", create_app, Settings)

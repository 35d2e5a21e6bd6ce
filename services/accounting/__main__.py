from services.accounting.app import Settings, create_app
from services.common.serve import run

run("accounting", create_app, Settings)

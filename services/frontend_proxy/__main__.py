from services.common.serve import run
from services.frontend_proxy.app import Settings, create_app

run("frontend-proxy", create_app, Settings)

from services.common.serve import run
from services.frontend.app import Settings, create_app

run("frontend", create_app, Settings)

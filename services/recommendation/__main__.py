from services.common.serve import run
from services.recommendation.app import Settings, create_app

run("recommendation", create_app, Settings)

from services.common.serve import run
from services.fraud_detection.app import Settings, create_app

run("fraud-detection", create_app, Settings)

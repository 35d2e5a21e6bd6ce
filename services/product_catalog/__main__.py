from services.common.serve import run
from services.product_catalog.app import Settings, create_app

run("product-catalog", create_app, Settings)

"""frontend: the storefront. Server-rendered pages (home, product, cart, order confirmation) and the JSON
API they are built on, in front of product-catalog, recommendation, cart and checkout."""

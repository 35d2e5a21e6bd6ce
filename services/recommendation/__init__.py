"""recommendation: up to five products from the catalog that the shopper is not already looking at."""

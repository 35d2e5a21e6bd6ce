"""product-catalog: lists, gets and searches the products of a catalog file shipped with the service."""

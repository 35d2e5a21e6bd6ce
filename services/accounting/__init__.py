"""accounting: consumes `OrderPlaced` from topic `orders` and records each order once in the orders table."""

"""fraud-detection: consumes `OrderPlaced` from topic `orders`, scores each order by rules and keeps the
results of the most recent orders in memory, the flagged ones listed."""

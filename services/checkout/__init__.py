"""checkout: turns a user's cart into a paid order and publishes it as `OrderPlaced` to topic `orders`."""

"""cart: each user's cart, one DynamoDB item per user, so every replica and every restart sees it."""

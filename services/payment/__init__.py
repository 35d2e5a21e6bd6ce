"""payment: validates a credit card (Luhn, type, expiry) and records a charge, once per idempotency key."""

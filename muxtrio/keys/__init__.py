"""Client keys: per-team gateway keys with model allowlists, rate limits, concurrency caps and budgets."""

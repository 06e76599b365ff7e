"""Analytics: pure functions over frames built from SQL aggregates."""

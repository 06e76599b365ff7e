"""Use cases: the only place that changes data."""

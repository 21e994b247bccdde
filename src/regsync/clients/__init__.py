"""Clients of the two remote APIs; the only place that speaks HTTP, classifies errors and retries."""

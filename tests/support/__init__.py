"""Helpers for regsync's own test suites (recorded HTTP, scrubbing, matching); no runtime code uses them."""

"""Reliability suite: kills, concurrency, every fault kind, read-only caches and bad input at volume."""

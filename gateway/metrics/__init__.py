"""Prometheus metrics (GET /metrics) and the live figures the console shows."""

"""Prometheus metrics (GET /metrics) and the live figures the console shows."""

from gateway.metrics.live import EndpointHealth, LiveStats
from gateway.metrics.recorder import Metrics

__all__ = ["EndpointHealth", "LiveStats", "Metrics"]

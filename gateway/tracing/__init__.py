"""OpenTelemetry tracing: a span per request, W3C trace context passed on to Triton.

Nothing here is imported unless ``otel_endpoint`` is set (``gateway.services``): with tracing
off the gateway loads no OpenTelemetry module and does no per-request work for it.
"""

"""OpenTelemetry tracing: a span per request, W3C trace context passed on to Triton."""

"""The tracer: OpenTelemetry's SDK exporting over OTLP/HTTP in batches, or a given exporter."""

from __future__ import annotations

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer


class Tracing:
    """A tracer provider of our own (not the process-global one), closed with the app.

    Args:
        endpoint: the OTLP/HTTP traces URL (``http://collector:4318/v1/traces``).
        service_name: the ``service.name`` resource attribute.
        exporter: replaces the OTLP exporter (tests pass an in-memory one).
    """

    def __init__(self, endpoint: str, service_name: str, *,
                 exporter: SpanExporter | None = None) -> None:
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=endpoint)
        self.provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer: Tracer = self.provider.get_tracer("chungus.gateway")

    async def close(self) -> None:
        """Send the spans still queued, then stop (the app's shutdown)."""
        self.provider.shutdown()

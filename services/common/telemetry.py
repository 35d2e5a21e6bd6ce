"""OpenTelemetry traces, metrics and logs, configured only by the standard `OTEL_*` variables.

Exporting over OTLP/HTTP happens when an OTLP endpoint variable is set (and the signal's exporter is
not `none`); spans are created and propagated either way, and metrics always feed `/metrics`. The resource
names the service and the build it runs (`service.version`), so telemetry tells the two colours of a
blue-green release apart.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] [trace_id=%(trace_id)s] %(message)s"
#: the baggage entry synthetic traffic carries (`synthetic_request=true`), kept on its spans
SYNTHETIC_BAGGAGE = "synthetic_request"


class TraceIdFilter(logging.Filter):
    """Stamps each log record with the current trace id, so a log line leads to its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        record.trace_id = format(context.trace_id, "032x") if context.is_valid else "-"
        return True


@dataclass
class Telemetry:
    """The process's providers; `shutdown` flushes whatever is still buffered."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider | None
    exporting: list[str] = field(default_factory=list)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        if self.logger_provider is not None:
            self.logger_provider.shutdown()


_telemetry: Telemetry | None = None


def _exports(signal: str) -> bool:
    """Whether `signal` (traces, metrics, logs) goes out over OTLP, following the SDK's variables."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if os.environ.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp").lower() == "none":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    )


def service_resource(service_name: str, version: str) -> Resource:
    """The process's resource: `OTEL_SERVICE_NAME` and a `service.version` in `OTEL_RESOURCE_ATTRIBUTES`
    win over the name and version the service knows itself by."""
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    resource = Resource.create(attributes)
    if SERVICE_VERSION in resource.attributes:
        return resource
    return resource.merge(Resource({SERVICE_VERSION: version}))


def setup_telemetry(service_name: str, log_level: str = "INFO", version: str = "dev") -> Telemetry:
    """Install the global providers and instrumentations once per process; later calls return the same."""
    global _telemetry
    if _telemetry is not None:
        return _telemetry

    resource = service_resource(service_name, version)
    exporting = [s for s in ("traces", "metrics", "logs") if _exports(s)]

    tracer_provider = TracerProvider(resource=resource)
    # synthetic traffic (the load generator's, the synthetic probes') says so in baggage: every span of it
    # carries the entry, so telemetry can tell it apart
    tracer_provider.add_span_processor(BaggageSpanProcessor(SYNTHETIC_BAGGAGE.__eq__))
    if "traces" in exporting:
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)

    readers: list[MetricReader] = [PrometheusMetricReader()]
    if "metrics" in exporting:
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    metrics.set_meter_provider(meter_provider)

    logging.basicConfig(level=log_level.upper(), format=LOG_FORMAT, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(TraceIdFilter())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per peer call is noise
    logger_provider = None
    if "logs" in exporting:
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
        set_logger_provider(logger_provider)
        logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))

    HTTPXClientInstrumentor().instrument()
    AIOKafkaInstrumentor().instrument()

    _telemetry = Telemetry(tracer_provider, meter_provider, logger_provider, exporting)
    return _telemetry

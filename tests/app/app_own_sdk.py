"""The test app, in an application that configures its own OpenTelemetry SDK tracer provider at
import (issue 10): its API spans must go to its SDK, exported by the SDK's own OTLP/HTTP exporter
(to OTEL_EXPORTER_OTLP_ENDPOINT), while ferrotel still traces the requests. `gunicorn app_own_sdk:app`.
"""

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)

from app import app  # noqa: E402,F401

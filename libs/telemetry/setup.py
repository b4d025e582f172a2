"""One call at a service's start: logs, traces and metrics, from settings and `OTEL_*`."""

from __future__ import annotations

from libs.config.settings import PodiumSettings
from libs.telemetry.logging import configure_logging
from libs.telemetry.metrics import serve_metrics
from libs.telemetry.tracing import configure_tracing


def configure_telemetry(settings: PodiumSettings, service: str) -> None:
    configure_logging(settings.log_level, service, settings.log_format, settings.kafka_client_log_level)
    configure_tracing(service)
    serve_metrics(settings.metrics_port)

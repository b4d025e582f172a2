"""One call at a service's start: logs, the production check, then traces and metrics.

Logging comes first so that a refusal is logged; the production check
(`libs.config.production`) comes before anything opens a port or a
connection, so a service with unsafe settings stops before it does anything.
"""

from __future__ import annotations

from libs.config.production import refuse_unsafe_production
from libs.config.settings import PodiumSettings
from libs.telemetry.logging import configure_logging
from libs.telemetry.metrics import serve_metrics
from libs.telemetry.tracing import configure_tracing


def configure_telemetry(settings: PodiumSettings, service: str) -> None:
    configure_logging(settings.log_level, service, settings.log_format, settings.kafka_client_log_level)
    refuse_unsafe_production(settings)
    configure_tracing(service)
    serve_metrics(settings.metrics_port)

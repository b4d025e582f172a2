"""Structured logs: one JSON object per line on stderr, with the trace and the Space.

Every line carries the service, the logger, the level and the message, plus
`trace_id` and `span_id` when it is written inside a span, and `space_id` when
the work is about one Space (set by the gRPC handlers and the projection
runner through `space_scope`). `PODIUM_LOG_FORMAT=text` gives the same fields
as plain text for a terminal.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

from opentelemetry import trace

_space_id: contextvars.ContextVar[str] = contextvars.ContextVar("podium_space_id", default="")


@contextlib.contextmanager
def space_scope(space_id: str) -> Iterator[None]:
    """Log lines written inside carry `space_id`."""
    token = _space_id.set(space_id)
    try:
        yield
    finally:
        _space_id.reset(token)


def set_space(space_id: str) -> None:
    """For the rest of the current task (a gRPC call runs in its own task)."""
    _space_id.set(space_id)


class _Context(logging.Filter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        span = trace.get_current_span().get_span_context()
        record.trace_id = format(span.trace_id, "032x") if span.is_valid else ""
        record.span_id = format(span.span_id, "016x") if span.is_valid else ""
        record.space_id = _space_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": getattr(record, "service", ""),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("trace_id", "span_id", "space_id"):
            if getattr(record, key, ""):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


TEXT = "%(asctime)s %(levelname)s %(service)s %(name)s [trace=%(trace_id)s space=%(space_id)s]: %(message)s"


def configure_logging(
    level: str, service: str, log_format: str = "json", kafka_client_level: str = "WARNING"
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Context(service))
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT, "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(kafka_client_level.upper())

"""The outbox relay's record headers without a tracer provider: made directly for a plain
traceparent, and the same as the OpenTelemetry API's no-op tracer would make (this notices an
upstream change in what a no-op span propagates)."""

from __future__ import annotations

import pytest
from opentelemetry import propagate, trace

from libs.telemetry import tracing

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _api_headers(traceparent: str, tracestate: str) -> list[tuple[str, bytes]]:
    with trace.NoOpTracer().start_as_current_span(
        "p", context=tracing._context_from(traceparent, tracestate)
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    return [(key, value.encode()) for key, value in carrier.items()]


@pytest.mark.parametrize(
    ("traceparent", "tracestate"),
    [
        (VALID, ""),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", ""),  # not sampled
        ("", ""),
        ("garbage", ""),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", ""),  # an invalid trace id
        ("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", ""),  # upper case: the API decides
        (VALID, "congo=t61rcWkgMzE"),
    ],
)
def test_without_a_provider_the_headers_are_what_the_api_would_make(monkeypatch, traceparent, tracestate):
    # As in a process with no provider installed (another test may have installed one in this one).
    monkeypatch.setattr(tracing, "recording", lambda: False)
    monkeypatch.setattr(tracing, "tracer", trace.NoOpTracer)
    with tracing.publish_span("podium.room.events.v1", traceparent, tracestate) as headers:
        pass
    assert headers == _api_headers(traceparent, tracestate)


def test_a_plain_traceparent_takes_the_fast_path(monkeypatch):
    monkeypatch.setattr(tracing, "recording", lambda: False)
    monkeypatch.setattr(tracing, "tracer", lambda: pytest.fail("a span was made"))
    with tracing.publish_span("t", VALID) as headers:
        assert headers == [("traceparent", VALID.encode())]

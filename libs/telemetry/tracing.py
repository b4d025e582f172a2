"""OpenTelemetry tracing, configured only by the standard `OTEL_*` variables.

    OTEL_TRACES_EXPORTER    otlp | console | none (default), comma-separated
    OTEL_SERVICE_NAME       defaults to `podium-<service>`
    OTEL_EXPORTER_OTLP_*    endpoint, headers, protocol (read by the OTLP exporter)
    OTEL_TRACES_SAMPLER     and _ARG (read by the SDK; default parentbased_always_on)

gRPC servers and clients and asyncpg are instrumented by the OpenTelemetry
contrib instrumentations. Kafka is ours, because an event is published long
after the request that caused it: the outbox relay continues the trace stored
in the event envelope (`traceparent`), puts its own span context in the
record's headers, and consumers continue from the headers (or, for records
without them, from the envelope). One trace therefore runs from a gateway's
call through the command, the outbox relay and the broker into every
projection that applies the event.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
from collections.abc import Iterator, Sequence

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import SpanKind

TRACER_NAME = "podium"
_instrumented = False


def configure_tracing(service: str, *, processors: Sequence[SpanProcessor] = ()) -> TracerProvider | None:
    """Installs the global tracer provider (once per process) and the instrumentations.

    `processors` adds span processors beyond what `OTEL_TRACES_EXPORTER` asks
    for (tests pass one with an in-memory exporter). With no exporter and no
    processor nothing is installed: the API's no-op tracer still carries an
    incoming `traceparent` through commands, envelopes and record headers, at
    no cost (recording spans nobody exports cost the room about 13 % of its
    CPU in the benchmark).
    """
    exporters = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",") if n.strip()]
    if not processors and all(name == "none" for name in exporters):
        return None
    attributes = {"service.name": os.environ.get("OTEL_SERVICE_NAME") or f"podium-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in filter(None, (n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(","))):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name != "none":
            raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: Podium supports otlp, console and none")
    for processor in processors:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)
    _instrument()
    return provider


def _instrument() -> None:
    global _instrumented
    if _instrumented:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer

    GrpcAioInstrumentorServer().instrument()
    GrpcAioInstrumentorClient().instrument()
    AsyncPGInstrumentor().instrument()
    _instrumented = True


def uninstrument() -> None:
    """Undoes `_instrument` (for tests that trace inside a process shared with other tests)."""
    global _instrumented
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer

    GrpcAioInstrumentorServer().uninstrument()
    GrpcAioInstrumentorClient().uninstrument()
    AsyncPGInstrumentor().uninstrument()
    _instrumented = False


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_traceparent() -> tuple[str, str]:
    """The current span's W3C `traceparent` and `tracestate`, or empty strings outside a span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", ""), carrier.get("tracestate", "")


def _context_from(traceparent: str, tracestate: str = "") -> context.Context:
    carrier = {"traceparent": traceparent} if traceparent else {}
    if tracestate:
        carrier["tracestate"] = tracestate
    return propagate.extract(carrier)


# The traceparent every span context here makes (version 00, ids not all zeros): the one case the
# fast path below takes; anything else goes the API's way.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


def recording() -> bool:
    """Whether spans are recorded: an SDK provider is installed (`configure_tracing`)."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


@contextlib.contextmanager
def publish_span(topic: str, traceparent: str, tracestate: str = "") -> Iterator[list[tuple[str, bytes]]]:
    """A PRODUCER span continuing the envelope's trace; yields the record headers to send.

    With no provider installed the API's span records nothing, and its headers are the incoming
    context as it was. For a plain `traceparent` they are made here directly: a fifth of the cost,
    on the outbox relay's path for every event."""
    if not recording() and not tracestate and (not traceparent or _TRACEPARENT.fullmatch(traceparent)):
        yield [("traceparent", traceparent.encode())] if traceparent else []
        return
    with tracer().start_as_current_span(
        f"{topic} publish",
        context=_context_from(traceparent, tracestate),
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
    ):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield [(key, value.encode()) for key, value in carrier.items()]


@contextlib.contextmanager
def consume_span(
    topic: str, headers: Sequence[tuple[str, bytes]] | None, traceparent: str = "", **attributes
) -> Iterator[trace.Span]:
    """A CONSUMER span continuing the record's trace: from its headers, else from the envelope."""
    carrier = {
        key: value.decode(errors="replace")
        for key, value in headers or ()
        if key in ("traceparent", "tracestate")
    }
    if "traceparent" not in carrier and traceparent:
        carrier["traceparent"] = traceparent
    with tracer().start_as_current_span(
        f"{topic} process",
        context=propagate.extract(carrier),
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic, **attributes},
    ) as span:
        yield span

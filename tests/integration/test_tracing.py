"""One trace from a gateway's call to a projection in another service, with the right parents.

The room service runs in this process (so an in-memory exporter sees its spans) against the real
PostgreSQL and broker, over real gRPC; the presence service's "who's here" board is rebuilt here
by the projection runner from the broker, as the presence process does.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from libs.config.settings import PodiumSettings
from libs.devstack.broker import free_port
from libs.projection.runner import ProjectionRunner
from libs.telemetry.tracing import configure_tracing, tracer, uninstrument
from services.presence.projections.space_board import SpaceBoard
from services.room.main import serve
from services.room.settings import RoomSettings
from tests.integration.clients import RoomClient

pytestmark = pytest.mark.integration


async def _serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    async with asyncio.timeout(60):
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)


async def test_a_join_is_one_trace_from_the_gateway_through_the_outbox_and_broker_into_presence(
    broker, private_database_url
):
    exporter = InMemorySpanExporter()
    configure_tracing("test-gateway", processors=[SimpleSpanProcessor(exporter)])
    port = free_port()
    settings = RoomSettings(
        database_url=private_database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        room_port=port,
        room_bind_host="127.0.0.1",
    )
    room = asyncio.create_task(serve(settings))
    board = SpaceBoard()
    runner = ProjectionRunner(
        PodiumSettings(kafka_bootstrap_servers=broker.bootstrap), board, client_id="trace-board"
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        await _serving(channel)
        await runner.start()
        await runner.caught_up.wait()
        host, listener = RoomClient(channel, "trace-host"), RoomClient(channel, "trace-listener")
        space_id = (await host.CreateSpace(title="traced")).space.space_id
        await host.StartSpace(space_id=space_id)
        with tracer().start_as_current_span("gateway: user taps Join") as gateway:
            await listener.JoinSpace(space_id=space_id)
        async with asyncio.timeout(20):
            while "trace-listener" not in {m.user_id for m in board.snapshot(space_id)}:
                await asyncio.sleep(0.05)
            while True:  # the consume span ends just after the board has the member
                spans = exporter.get_finished_spans()
                if any(
                    s.name == "podium.room.events.v1 process"
                    and s.context.trace_id == gateway.get_span_context().trace_id
                    for s in spans
                ):
                    break
                await asyncio.sleep(0.05)
    finally:
        await channel.close()
        await runner.stop()
        room.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await room
        uninstrument()  # the other tests in this process run uninstrumented, as before

    trace_id = gateway.get_span_context().trace_id
    chain = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in chain}

    def parent(span):
        return by_id.get(span.parent.span_id) if span.parent else None

    client = next(s for s in chain if s.kind == SpanKind.CLIENT and s.name.endswith("RoomService/JoinSpace"))
    server = next(s for s in chain if s.kind == SpanKind.SERVER and s.name.endswith("RoomService/JoinSpace"))
    publish = [s for s in chain if s.kind == SpanKind.PRODUCER and s.name == "podium.room.events.v1 publish"]
    consumed = [
        s
        for s in chain
        if s.kind == SpanKind.CONSUMER and s.attributes.get("podium.projection") == board.name
    ]
    assert parent(client).name == "gateway: user taps Join"
    assert parent(server) is client
    assert any(parent(s) is server for s in chain if s.attributes.get("db.system") == "postgresql")
    assert publish and all(parent(p) is server for p in publish)  # the relay continues the envelope's trace
    assert consumed and all(parent(c) in publish for c in consumed)  # the projection continues the headers'
    assert {c.attributes["podium.space_id"] for c in consumed} == {space_id}

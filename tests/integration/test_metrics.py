"""Every service serves Prometheus metrics; the room's, scraped after known calls, say what happened."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.devstack.broker import free_port
from tests.integration.clients import RoomClient

pytestmark = pytest.mark.integration


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_the_room_counts_calls_by_status_and_reports_outbox_projections_and_live_spaces(
    service_factory, private_broker, private_database_url
):
    port = free_port()
    room = await service_factory(
        "room", broker=private_broker, database=private_database_url, env={"PODIUM_METRICS_PORT": str(port)}
    )
    host, listener = RoomClient(room.channel, "metrics-host"), RoomClient(room.channel, "metrics-listener")
    space_id = (await host.CreateSpace(title="measured")).space.space_id
    await host.StartSpace(space_id=space_id)
    await listener.JoinSpace(space_id=space_id)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await listener.EndSpace(space_id=space_id)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    def value(name, **labels):
        return metrics.get((name, tuple(sorted(labels.items()))))

    async with asyncio.timeout(20):
        while True:
            metrics = await asyncio.to_thread(_scrape, port)
            settled = value("podium_space_participants", role="listener") == 1
            # the relay counts a batch once its rows are deleted, a moment after the broker has it
            if settled and (value("podium_outbox_published_total", schema="room") or 0) >= 3:
                break
            await asyncio.sleep(0.2)
    assert value("podium_grpc_requests_total", method="CreateSpace", code="OK") == 1
    assert value("podium_grpc_requests_total", method="JoinSpace", code="OK") == 1
    assert value("podium_grpc_requests_total", method="EndSpace", code="PERMISSION_DENIED") == 1
    assert value("podium_grpc_request_seconds_count", method="StartSpace") == 1
    assert value("podium_live_spaces") == 1
    assert value("podium_projection_caught_up", projection="room-space-directory") == 1
    assert value("podium_projection_lag_records", projection="room-space-directory") == 0
    assert value("podium_outbox_published_total", schema="room") >= 3
    assert value("podium_outbox_backlog", schema="room") is not None
    await room.stop()

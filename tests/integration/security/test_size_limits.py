"""Every size limit is enforced at the boundary: one over is INVALID_ARGUMENT (or, for whole
messages, RESOURCE_EXHAUSTED), exactly at the limit is accepted. docs/security.md lists them."""

from __future__ import annotations

import grpc
import pytest

from podium.presence.v1 import presence_types_pb2 as pt
from tests.integration.clients import ModerationClient, PresenceGateway, RoomClient
from tests.integration.conftest import eventually
from tests.support.room_log import announce_spaces

pytestmark = pytest.mark.integration


async def _invalid(call, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in refused.value.details() or field in str(refused.value.trailing_metadata())


async def test_titles_descriptions_invitations_and_report_texts(room, moderation):
    host = RoomClient(room.channel, "size-host")
    await _invalid(host.CreateSpace(title="t" * 71), "title")
    await _invalid(host.CreateSpace(title="ok", description="d" * 501), "description")
    space_id = (await host.CreateSpace(title="t" * 70, description="d" * 500)).space.space_id
    await host.StartSpace(space_id=space_id)
    await _invalid(host.InviteUsers(space_id=space_id, user_ids=[f"u{i}" for i in range(101)]), "user_ids")
    await _invalid(host.InviteUsers(space_id=space_id, user_ids=["u" * 129]), "user")
    await _invalid(host.GetSpace(space_id="s" * 129), "space_id")
    reporter = RoomClient(room.channel, "size-reporter")
    await reporter.JoinSpace(space_id=space_id)
    reports = ModerationClient(moderation.channel, "size-reporter")
    # moderation learns of the join from the log: wait until it accepts a report at the limit
    await eventually(lambda: reports.ReportSpace(space_id=space_id, reason=1, text="x" * 1000))
    await _invalid(reports.ReportSpace(space_id=space_id, reason=1, text="x" * 1001), "text")


async def test_a_message_over_the_grpc_limit_is_refused_before_it_is_read(room):
    host = RoomClient(room.channel, "size-host")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await host.CreateSpace(title="big", description="d" * (4 * 1024 * 1024 + 1))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_report_presence_batches_are_bounded(service_factory, private_broker, private_database_url):
    presence = await service_factory(
        "presence",
        broker=private_broker,
        database=private_database_url,
        env={"PODIUM_PRESENCE_MAX_ENTRIES_PER_REPORT": "100"},
    )
    gateway = PresenceGateway(presence.channel, "gateway-service")
    await announce_spaces(private_broker.bootstrap, ["size-space"], presence=presence.channel)

    def entries(n):
        return [pt.PresenceEntry(user_id=f"u{i}", space_id="size-space") for i in range(n)]

    await _invalid(gateway.ReportPresence(gateway_id="gw", entries=entries(101)), "entries")
    assert (await gateway.ReportPresence(gateway_id="gw", entries=entries(100))).accepted == 100

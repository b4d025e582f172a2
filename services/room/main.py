"""The room service's composition root: wiring only.

    python -m services.room

Its events go to `podium.room.events.v1` through its own `room` schema. It
reads back the room topic for the Space directory, the moderation topic to
carry out removals and blocks, and the presence topic to turn timed-out
connections into leaves. Health says SERVING once all three have caught up.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from libs.config.runtime import run
from libs.events.topics import ROOM_EVENTS
from libs.grpckit.rate_limits import rate_limiter
from libs.grpckit.shell import ServiceShell
from libs.telemetry.setup import configure_telemetry
from podium.room.v1 import room_service_pb2, room_service_pb2_grpc
from services.room.api.room_api import RoomApi
from services.room.application.abandoned_sweeper import AbandonedSpaceSweeper
from services.room.application.invite_links import InviteLinks
from services.room.application.live_census import LiveCensus
from services.room.application.scheduled_spaces import ScheduledSpaces
from services.room.application.space_commands import SpaceCommands
from services.room.application.writer_lane import WriterLane
from services.room.projections.leaver_release import LeaverRelease
from services.room.projections.moderation_reactions import ModerationReactions
from services.room.projections.own_reactions import OwnTopicReactions
from services.room.projections.policy_evictor import PolicyEvictor
from services.room.projections.presence_reactions import PresenceReactions
from services.room.projections.space_directory import SpaceDirectory
from services.room.settings import RoomSettings

log = logging.getLogger("podium.room")

SERVICE_NAME = room_service_pb2.DESCRIPTOR.services_by_name["RoomService"].full_name


async def serve(settings: RoomSettings) -> None:
    shell = ServiceShell(
        settings, schema="room", producer="room", publishes=(ROOM_EVENTS,), service_names=[SERVICE_NAME]
    )
    async with shell:
        assert shell.pool is not None and shell.store is not None
        lane = WriterLane(settings.database_url, "room", settings.room_listener_shard_lanes)
        commands = SpaceCommands(
            shell.store,
            settings.limits(),
            shard_joins_per_second=settings.room_listener_shard_joins_per_second,
            shard_lanes=settings.room_listener_shard_lanes,
            lane=lane,
        )
        directory = SpaceDirectory(
            shell.pool,
            shell.store,
            cache_spaces=settings.room_directory_cache_spaces,
            relevance_candidates=settings.room_search_relevance_candidates,
        )
        moderation = ModerationReactions(shell.pool, commands)
        shell.add_durable_view(directory)
        shell.add_durable_view(moderation)
        shell.add_durable_view(PresenceReactions(commands))
        evictor = PolicyEvictor(commands, settings.room_eviction_chunk)
        shell.add_durable_view(OwnTopicReactions(evictor, LeaverRelease(commands)))
        shell.add_background(lane)
        shell.add_background(AbandonedSpaceSweeper(commands, directory, settings.room_sweep_interval_seconds))
        shell.add_background(LiveCensus(directory, settings.room_census_interval_seconds))
        shell.add_background(ScheduledSpaces(commands, directory, settings.room_sweep_interval_seconds))
        api = RoomApi(
            shell.authenticator,
            commands,
            directory,
            InviteLinks(settings.jwt_secret.get_secret_value(), settings.room_invite_link_base_url),
            timedelta(seconds=settings.room_default_invite_link_ttl_seconds),
            moderation,
            settings.media_relays(),
            rate_limiter(settings),
        )
        room_service_pb2_grpc.add_RoomServiceServicer_to_server(api, shell.host.server)
        await shell.serve(settings.room_bind_host, settings.room_port)


def main() -> None:
    settings = RoomSettings()
    configure_telemetry(settings, "room")
    run(serve(settings), settings.event_loop)

"""The moderation service's composition root: wiring only.

    python -m services.moderation

Its events go to `podium.moderation.events.v1` through its own `moderation`
schema. It reads the room topic to know who holds which role, and its own
topic for the cross-Space report index (both durable views in the same
schema, resumed from their stored positions) and, on faust, for the report
windows that trigger automatic mutes.
"""

from __future__ import annotations

from libs.config.runtime import run
from libs.events.topics import MODERATION_EVENTS
from libs.grpckit.rate_limits import rate_limiter
from libs.grpckit.shell import ServiceShell
from libs.telemetry.setup import configure_telemetry
from podium.moderation.v1 import moderation_service_pb2, moderation_service_pb2_grpc
from services.moderation.api.moderation_api import ModerationApi
from services.moderation.application.moderation_commands import ModerationCommands
from services.moderation.application.report_windows import ReportWindows
from services.moderation.domain.commands import AutoMute
from services.moderation.projections.report_index import ReportIndex
from services.moderation.projections.room_roles import RoomRoles
from services.moderation.settings import ModerationSettings

SERVICE_NAME = moderation_service_pb2.DESCRIPTOR.services_by_name["ModerationService"].full_name


async def serve(settings: ModerationSettings) -> None:
    shell = ServiceShell(
        settings,
        schema="moderation",
        producer="moderation",
        publishes=(MODERATION_EVENTS,),
        service_names=[SERVICE_NAME],
    )
    async with shell:
        assert shell.pool is not None and shell.store is not None
        roles = RoomRoles(shell.pool, cache_spaces=settings.moderation_roles_cache_spaces)
        reports = ReportIndex(shell.pool)
        roles_runner = shell.add_durable_view(roles)
        shell.add_durable_view(reports)
        limits = settings.limits()
        commands = ModerationCommands(shell.store, limits)

        async def auto_mute(space_id: str, user_id: str, report_ids: tuple[str, ...], cause: str) -> None:
            roles_now = await roles.roles(space_id, "", user_id)
            await commands.auto_mute(space_id, AutoMute(space_id, user_id, report_ids, roles_now), cause)

        shell.add_background(
            ReportWindows(
                settings,
                threshold=limits.auto_mute_reports,
                window=limits.auto_mute_window,
                on_threshold=auto_mute,
                producer_batch_bytes=settings.moderation_producer_batch_bytes,
                log_loss=shell.log_loss,
            )
        )
        api = ModerationApi(
            shell.authenticator, commands, roles, reports, rate_limiter(settings), room_view=roles_runner
        )
        moderation_service_pb2_grpc.add_ModerationServiceServicer_to_server(api, shell.host.server)
        await shell.serve(settings.moderation_bind_host, settings.moderation_port)


def main() -> None:
    settings = ModerationSettings()
    configure_telemetry(settings, "moderation")
    run(serve(settings), settings.event_loop)

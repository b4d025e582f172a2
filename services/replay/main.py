"""The replay service's composition root: wiring only.

    python -m services.replay

Its events (finalized, deleted, listened) go to `podium.replay.events.v1`
through its own `replay` schema, which also holds the finalizing jobs and its
two durable views: the replay catalog (from the room topic and its own; it
queues a job when a recorded Space ends) and each Space's history (from the
room, moderation and media topics, for timelines and time travel), both
resumed from their stored positions on start. It also reads the recording
topic as it is written, into its own copy of the chunks (the recording
spool), which finalizing reads.
"""

from __future__ import annotations

from datetime import timedelta

from libs.config.runtime import run
from libs.events.topics import REPLAY_EVENTS
from libs.grpckit.shell import ServiceShell
from libs.telemetry.setup import configure_telemetry
from podium.replay.v1 import replay_service_pb2, replay_service_pb2_grpc
from services.replay.api.replay_api import ReplayApi
from services.replay.application.finalizer import Finalizer, RetentionSweeper, delete_files
from services.replay.application.replay_commands import ReplayCommands
from services.replay.infrastructure.blob_store import LocalDirectoryBlobStore
from services.replay.infrastructure.jobs import JobStore
from services.replay.infrastructure.recording_spool import RecordingSpool
from services.replay.projections.replay_catalog import ReplayCatalog
from services.replay.projections.space_history import SpaceHistory
from services.replay.settings import ReplaySettings

SERVICE_NAME = replay_service_pb2.DESCRIPTOR.services_by_name["ReplayService"].full_name


async def serve(settings: ReplaySettings) -> None:
    shell = ServiceShell(
        settings, schema="replay", producer="replay", publishes=(REPLAY_EVENTS,), service_names=[SERVICE_NAME]
    )
    async with shell:
        jobs = JobStore(shell.pool, "replay")
        blobs = LocalDirectoryBlobStore(settings.replay_blob_dir)
        commands = ReplayCommands(shell.store)
        spool = RecordingSpool(settings, shell.pool, "replay", log_loss=shell.log_loss)

        async def forget(space_id: str) -> None:
            delete_files(blobs, space_id)
            await spool.forget(space_id)

        catalog = ReplayCatalog(
            shell.pool, on_deleted=forget, cache_spaces=settings.replay_catalog_cache_spaces
        )
        finalizer = Finalizer(
            settings,
            jobs,
            commands,
            catalog,
            blobs,
            spool,
            delay=timedelta(seconds=settings.replay_finalize_delay_seconds),
            poll_seconds=settings.replay_finalize_poll_seconds,
        )
        catalog.on_recorded_end = finalizer.enqueue
        history = SpaceHistory(shell.pool)
        room_views = (shell.add_durable_view(catalog), shell.add_durable_view(history))
        shell.add_background(spool)
        shell.add_background(finalizer)
        shell.add_background(
            RetentionSweeper(
                commands, catalog, blobs, settings.retention(), settings.replay_retention_sweep_seconds
            )
        )
        api = ReplayApi(
            shell.authenticator,
            commands,
            catalog,
            history,
            jobs,
            blobs,
            settings.retention(),
            room_views=room_views,
        )
        replay_service_pb2_grpc.add_ReplayServiceServicer_to_server(api, shell.host.server)
        await shell.serve(settings.replay_bind_host, settings.replay_port)


def main() -> None:
    settings = ReplaySettings()
    configure_telemetry(settings, "replay")
    run(serve(settings), settings.event_loop)

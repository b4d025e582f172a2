"""The media relay's composition root: wiring only.

    python -m services.media_relay

It folds the room and moderation topics into its view of who may be heard: rows in
its `media_relay` schema (one writer among replicas) and, on every replica, the live
Spaces in memory, loaded from those rows at start and read on from the log. It
relays Opus frames from publishers to subscribing gateways, writes talking
events to `podium.media.events.v1` through its `media_relay` schema, and
recorded audio to `podium.media.recording.v1`. Health says SERVING once the
view has caught up with the log.
"""

from __future__ import annotations

import asyncio
import contextlib

from libs.config.runtime import run
from libs.events.topics import MEDIA_EVENTS
from libs.grpckit.shell import ServiceShell
from libs.telemetry.metrics import VIEW_CACHED_SPACES
from libs.telemetry.setup import configure_telemetry
from services.media_relay.api.relay_api import SERVICE_NAME, MediaRelayApi, add_to_server
from services.media_relay.application.fanout import Fanout
from services.media_relay.application.recorder import Recorder
from services.media_relay.application.talking_events import TalkingEvents
from services.media_relay.projections.space_media import SpaceMediaView
from services.media_relay.projections.space_media_rows import SpaceMediaRows
from services.media_relay.settings import MediaRelaySettings


async def serve(settings: MediaRelaySettings) -> None:
    shell = ServiceShell(
        settings,
        schema="media_relay",
        producer="media-relay",
        publishes=(MEDIA_EVENTS,),
        service_names=[SERVICE_NAME],
    )
    async with shell:
        assert shell.store is not None and shell.pool is not None
        talking = TalkingEvents(shell.store)
        recorder = Recorder(
            settings,
            settings.media_relay_id,
            chunk_frames=settings.media_relay_recording_chunk_frames,
            queue_frames=settings.media_relay_recording_queue_frames,
        )
        fanout = Fanout(settings.media_relay_tick_ms / 1000, settings.talking_policy(), talking.offer)
        rows = SpaceMediaRows(shell.pool)
        view = SpaceMediaView(rows, forget_ended_after=settings.media_relay_forget_ended_after_seconds)
        VIEW_CACHED_SPACES.labels(view.name).set_function(lambda: len(view.spaces))

        def ended(space_id: str) -> None:
            fanout.space_ended(space_id)
            recorder.end_space(space_id)

        view.on_ended = ended
        view.on_left = fanout.participant_left
        shell.add_durable_view(rows)
        shell.add_view_cache(rows, view)
        shell.add_background(talking)
        shell.add_background(recorder)
        api = MediaRelayApi(
            shell.authenticator,
            view,
            fanout,
            recorder,
            settings.media_relay_subscriber_queue_ticks,
            settings.media_relay_admission_wait_seconds,
        )
        add_to_server(api, shell.host.server)

        async def close_streams_on_stop() -> None:
            # Live streams never end on their own: close them so the drain does not wait its grace.
            await shell.host.wait_for_stop_signal()
            fanout.shutdown()

        closer = asyncio.create_task(close_streams_on_stop())
        try:
            await shell.serve(settings.media_relay_bind_host, settings.media_relay_port)
        finally:
            closer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closer


def main() -> None:
    settings = MediaRelaySettings()
    configure_telemetry(settings, "media-relay")
    run(serve(settings), settings.event_loop)

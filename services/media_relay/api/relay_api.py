"""The MediaRelayService servicer: Publish (client stream) and Subscribe (server stream).

Publish authenticates the caller, checks the first frame's Space and speaker
(the speaker must be the caller, and allowed to speak), then for every frame:
validates it, asks the projection whether the speaker may be heard right now
(O(1)), and hands admitted frames to the fan-out and, if the Space records, to
the recorder. A speaker who is muted or demoted mid-stream is not cut off:
their frames are refused (counted in the response) until they may speak
again. When the Space ends the stream closes with FAILED_PRECONDITION.

Subscribe admits a client gateway (gateway token) to a Space that exists and
is live: the gateway fans the audio out only to listeners the room admitted
(each joined with their own token). A user's own token is admitted only while
that user is in the Space, and the stream ends when they leave or are removed
(docs/security.md). It streams already-encoded `SubscribeResponse` bytes (see
`fanout.py`), so its response serializer is the identity: `add_to_server`
registers the service by hand instead of through the generated helper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from libs.domain.errors import (
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from libs.domain.reasons import Reason
from libs.grpckit.errors import abort
from libs.grpckit.handlers import USERS_AND_GATEWAYS, Authenticator
from libs.grpckit.validation import require_id
from libs.telemetry.metrics import MEDIA_FRAMES
from podium.media.v1 import media_service_pb2 as pb
from podium.media.v1 import media_types_pb2 as mt
from services.media_relay.application.fanout import SPACE_ENDED, Fanout, SpaceFanout, framed
from services.media_relay.application.recorder import Recorder
from services.media_relay.domain.admission import Admission
from services.media_relay.domain.frames import validate_frame
from services.media_relay.projections.space_media import SpaceMediaView

FRAMES_IN, FRAMES_REFUSED = MEDIA_FRAMES.labels("in"), MEDIA_FRAMES.labels("refused")
log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MediaRelayService"].full_name

_OPENING_ERRORS = {
    Admission.UNKNOWN_SPACE: lambda s: NotFound(f"space {s!r} does not exist", reason=Reason.SPACE_NOT_FOUND),
    Admission.NOT_LIVE: lambda s: FailedPrecondition(
        f"space {s!r} is not live", reason=Reason.SPACE_NOT_LIVE
    ),
    Admission.ENDED: lambda s: SPACE_ENDED,
    Admission.NOT_A_SPEAKER: lambda s: PermissionDenied(
        f"only the host, co-hosts and speakers of space {s!r} may publish audio", reason=Reason.NOT_A_SPEAKER
    ),
    Admission.HARD_MUTED: lambda s: PermissionDenied(
        f"you are muted in space {s!r} by a host or co-host (or pending review)", reason=Reason.MUTED
    ),
    Admission.NOT_A_PARTICIPANT: lambda s: PermissionDenied(
        f"only participants of space {s!r} may listen: join it first (JoinSpace), or listen through "
        "a client gateway",
        reason=Reason.NOT_A_PARTICIPANT,
    ),
}


class MediaRelayApi:
    def __init__(
        self,
        authenticator: Authenticator,
        view: SpaceMediaView,
        fanout: Fanout,
        recorder: Recorder,
        subscriber_queue_ticks: int,
        admission_wait_seconds: float = 2.0,
    ):
        self.authenticator = authenticator
        self.view = view
        self.fanout = fanout
        self.recorder = recorder
        self.subscriber_queue_ticks = subscriber_queue_ticks
        self.admission_wait_seconds = admission_wait_seconds

    async def Publish(self, request_iterator, context: grpc.aio.ServicerContext) -> pb.PublishResponse:
        try:
            caller = self.authenticator.authenticate(context)
            first = await anext(aiter(request_iterator), None)
            if first is None:
                return pb.PublishResponse()
            frame = first.frame
            validate_frame(frame, 0)
            if frame.speaker_id != caller.user_id:
                raise PermissionDenied(
                    f"frame.speaker_id {frame.speaker_id!r} is not you ({caller.user_id!r}): "
                    "a gateway publishes each speaker with that speaker's token",
                    reason=Reason.NOT_YOUR_STREAM,
                )
            verdict = await self.view.admit_opening(frame.space_id, frame.speaker_id)
            if verdict in _OPENING_ERRORS:
                raise _OPENING_ERRORS[verdict](frame.space_id)
            space = self.fanout.space(frame.space_id)
            session = space.add_publisher(frame.speaker_id)
            counts = [0, 0, 0]  # received, forwarded, refused
            reader = asyncio.ensure_future(self._forward(first, request_iterator, space, counts))
            try:
                await asyncio.wait((reader, session.done), return_when=asyncio.FIRST_COMPLETED)
                if not reader.done():
                    raise session.done.result()  # the Space ended, or the relay is stopping
                reader.result()
            finally:
                if not reader.done():
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reader
                space.remove_publisher(session)
            return pb.PublishResponse(
                frames_received=counts[0], frames_forwarded=counts[1], frames_refused=counts[2]
            )
        except grpc.aio.AbortError:
            raise
        except (DomainError, Exception) as e:
            await abort(context, e, "Publish")

    async def _forward(self, first: pb.PublishRequest, requests, fanout: SpaceFanout, counts) -> None:
        """The hot path: one frame at a time, O(1) admission against the projection."""
        space_id, speaker_id = first.frame.space_id, first.frame.speaker_id
        admit, recording = self.view.admit, self.view.recording
        recorder = self.recorder
        request = first
        index = 0
        heard = True
        while True:
            frame = request.frame
            counts[0] += 1
            if index:
                validate_frame(frame, index)
                if frame.space_id != space_id or frame.speaker_id != speaker_id:
                    raise InvalidArgument(
                        f"frame {index} changes the stream's space or speaker; one stream carries one "
                        "speaker in one space",
                        [FieldViolation("frame.space_id", f"must stay {space_id!r} / {speaker_id!r}")],
                    )
            verdict = admit(space_id, speaker_id)
            now_ns = time.time_ns()
            if verdict is Admission.ADMITTED:
                heard = True
                relayed = mt.RelayedFrame(
                    speaker_id=speaker_id,
                    sequence=frame.sequence,
                    captured_at=frame.captured_at,
                    audio_level_dbov=frame.audio_level_dbov,
                    opus=frame.opus,
                    relayed_at=Timestamp(seconds=now_ns // 1_000_000_000, nanos=now_ns % 1_000_000_000),
                ).SerializeToString()
                fanout.push(speaker_id, framed(relayed), frame.audio_level_dbov, now_ns // 1_000_000)
                if recording(space_id):
                    recorder.offer(space_id, speaker_id, relayed)
                counts[1] += 1
                FRAMES_IN.inc()
            elif verdict is Admission.ENDED:
                raise SPACE_ENDED
            else:
                counts[2] += 1
                FRAMES_REFUSED.inc()
                if heard:  # the first frame refused since the change: how long after it?
                    heard = False
                    after_ms = (now_ns / 1e9 - self.view.changed_at.get(space_id, now_ns / 1e9)) * 1000
                    log.info(
                        "forwarding stopped: space=%s speaker=%s reason=%s after_event_ms=%.1f",
                        space_id, speaker_id, verdict.name, after_ms,
                    )  # fmt: skip
                fanout.silence(speaker_id, now_ns // 1_000_000)
            index += 1
            request = await anext(requests, None)
            if request is None:
                return

    async def Subscribe(self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext):
        try:
            caller = self.authenticator.authenticate(context, USERS_AND_GATEWAYS)
            space_id = require_id(request.space_id, "space_id")
            user_id = None if caller.is_gateway else caller.user_id
            verdict = await self.view.wait_for_admission(space_id, user_id, self.admission_wait_seconds)
            if verdict in _OPENING_ERRORS:
                raise _OPENING_ERRORS[verdict](space_id)
            fanout = self.fanout.space(space_id)
            subscriber = fanout.add_subscriber(self.subscriber_queue_ticks, user_id)
            try:
                await context.send_initial_metadata(())  # subscribed: the gateway knows before any audio
                async for message in subscriber.messages():
                    yield message
            finally:
                fanout.remove_subscriber(subscriber)
        except grpc.aio.AbortError:
            raise
        except (DomainError, Exception) as e:
            await abort(context, e, "Subscribe")


def add_to_server(api: MediaRelayApi, server: grpc.aio.Server) -> None:
    handlers = {
        "Publish": grpc.stream_unary_rpc_method_handler(
            api.Publish,
            request_deserializer=pb.PublishRequest.FromString,
            response_serializer=pb.PublishResponse.SerializeToString,
        ),
        "Subscribe": grpc.unary_stream_rpc_method_handler(
            api.Subscribe,
            request_deserializer=pb.SubscribeRequest.FromString,
            response_serializer=None,  # the fan-out hands over encoded SubscribeResponse bytes
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))

"""Writes docs/events.md, the catalogue of Podium's topics and events, from the protos.

Run `python -m libs.contracts.catalogue`; CI runs it with `--check` and fails
when the committed catalogue is stale. Descriptions come from the comments in
the `.proto` files; topics from `libs/events/topics.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2, json_format

from libs.config.settings import PodiumSettings
from libs.contracts.codegen import ROOT, include_paths, our_protos
from libs.events.registry import message_class
from libs.events.topics import ALL_TOPICS

# The modules of the other records, so the symbol database knows them (events: libs.events.registry).
from podium.analytics.v1 import analytics_stats_pb2  # noqa: F401
from podium.common.v1 import envelope_pb2  # noqa: F401
from podium.media.v1 import media_types_pb2  # noqa: F401
from podium.presence.v1 import presence_types_pb2  # noqa: F401

OUT = ROOT / "docs" / "events.md"
TYPES = {v: k.removeprefix("TYPE_").lower() for k, v in descriptor_pb2.FieldDescriptorProto.Type.items()}

HEADER = """# Event catalogue

Generated from `protos/` and `libs/events/topics.py` by `python -m libs.contracts.catalogue`;
CI fails when this file is stale. Do not edit by hand.

Every record's value is a `podium.common.v1.EventEnvelope` whose `payload` (a
`google.protobuf.Any`) holds one of the events below; `event_type` is the
payload's full name. Records are keyed by Space id (moderation's blocks: by the
blocking host's user id), so one Space's events share a partition. A Space's room
events are on its own stream, `space-<id>`, and, once it has listener shards
(ListenerShardsGrown), listeners' joins and leaves on `space-<id>/l<k>` too.
Every type, with its imports and these comments, is in the descriptor set
`docs/podium.binpb`; docs/analysts.md shows how to decode any topic with it
alone, and `docs/asyncapi.json` describes every topic's key, headers and value.

Guarantees: per stream (`producer`, `stream_id`), events arrive in
`stream_version` order; a Space's streams interleave in no set order;
delivery is at least once, so drop duplicates by `(producer, stream_id,
stream_version)` (or by `event_id`); across Spaces there is no order. After a
broker loses its log, the producers republish everything from PostgreSQL in the
original order (a *reseed*): offsets start again from zero and consumers see
duplicates, which the rule above removes. See docs/architecture.md.
"""


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    from grpc_tools import protoc

    files = our_protos()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = [
            "protoc",
            *include_paths(),
            f"--descriptor_set_out={out}",
            "--include_source_info",
            *files,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple, str]:
    return {
        tuple(loc.path): " ".join(line.strip() for line in loc.leading_comments.strip().splitlines())
        for loc in file.source_code_info.location
        if loc.leading_comments
    }


# Examples a generic filler would get wrong: fields that only go with some values of others. Each is
# merged into the generic example (protobuf JSON; None drops a field) and parsed back, so a field
# name that no longer exists fails the generator.
EXAMPLES: dict[str, dict] = {
    "podium.room.v1.SpaceCreated": {"topics": ["music"], "language": "en"},
    "podium.room.v1.SpaceUpdated": {
        "changedFields": ["title", "scheduled_start"],  # field names, as UpdateSpace's mask has them
        "scheduledStart": "2026-11-24T18:00:00Z",
        "title": "Friday audio hangout, part 2",
        **dict.fromkeys(("description", "joinPolicy", "recordingEnabled", "topics", "language")),
    },
    "podium.room.v1.ParticipantJoined": {
        "role": "ROLE_LISTENER",
        "source": "JOIN_SOURCE_INVITE_LINK",
    },
    "podium.room.v1.ParticipantLeft": {"reason": "LEAVE_REASON_TIMED_OUT", "previousRole": "ROLE_SPEAKER"},
    "podium.room.v1.SpaceReminder": {"part": 1, "parts": 1},
    "podium.moderation.v1.ParticipantMuted": {
        "kind": "MUTE_KIND_AUTO",
        "reportIds": ["example-report-1", "example-report-2", "example-report-3"],
        "distinctReporters": 3,
        "windowSeconds": 120,
    },
    "podium.moderation.v1.ParticipantUnmuted": {"lifted": "MUTE_KIND_HOST"},
    "podium.moderation.v1.ParticipantRemoved": {"reason": "kept talking over the speakers"},
    "podium.presence.v1.ParticipantTimedOut": {"massTimeOut": None},
    "podium.media.v1.SpeakerStoppedTalking": {"talkedMs": 4200},
    "podium.replay.v1.ReplayFinalized": {
        "duration": "1800s",
        "sizeBytes": "14400000",
        "speakerIds": ["example-host", "example-speaker"],
        "recordingStartedAt": "2026-11-24T12:00:05Z",
        "endedAt": "2026-11-24T12:30:10Z",
    },
    "podium.room.v1.InviteLinkCreated": {"expiresAt": "2026-11-25T12:00:00Z"},
    "podium.analytics.v1.SpaceStats": {
        "asOf": "2026-11-24T12:30:00Z",
        "final": True,
        "startedAt": "2026-11-24T12:00:00Z",
        "endedAt": "2026-11-24T12:30:00Z",
        "currentListeners": 0,
        "peakListeners": 42,
        "uniqueListeners": 57,
        "listenerMinutes": 812.5,
        "speakingRoleSeconds": {"example-host": 1800.0, "example-speaker": 600.0},
        "talkingSeconds": {"example-host": 912.4, "example-speaker": 301.0},
        "speakRequests": 5,
        "speakRequestsApproved": 2,
        "medianWaitSeconds": 48.0,
        "joinsBySource": {"direct": 50, "invite link": 6, "host": 1},
        "replayListens": 0,
        "roomVersion": "143",
    },
    "podium.analytics.v1.ListenersInWindow": {
        "windowSeconds": 60,
        "listenersAtStart": 38,
        "peakListeners": 42,
        "listenersAtEnd": 40,
    },
    "podium.presence.v1.HeartbeatBatch": dict.fromkeys(("sentAt", "gatewayDisconnected", "tick")),
    "podium.media.v1.RecordingChunk": {
        "frames": [
            {
                "speakerId": "example-speaker-id",
                "sequence": "1200",
                "capturedAt": "2026-11-24T12:00:24Z",
                "audioLevelDbov": -28,
                "opus": "+P/+",
                "relayedAt": "2026-11-24T12:00:24.012Z",
            }
        ]
    },
    "podium.common.v1.EventEnvelope": {
        "eventId": "01937a4e-6b2f-7c1d-9a3e-5f0b8c2d4e6a",
        "streamId": "space/example-space-id",
        "eventType": "podium.room.v1.SpaceStarted",
        "producer": "room",
        "streamVersion": "3",
        "actorUserId": "example-host",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": None,
        "payload": {
            "@type": "type.googleapis.com/podium.room.v1.SpaceStarted",
            "spaceId": "example-space-id",
            "hostUserId": "example-host",
        },
    },
}

#: Records on the topics that are not events in an envelope, and the envelope itself.
OTHER_RECORDS = (
    ("podium.common.v1.EventEnvelope", "the value of every record on the event topics"),
    ("podium.analytics.v1.SpaceStats", "on `podium.analytics.space_stats.v1`"),
    ("podium.analytics.v1.ListenersInWindow", "on `podium.analytics.listeners_per_minute.v1`"),
    ("podium.analytics.v1.AnalyticsTick", "on `podium.analytics.ticks.v1` (internal)"),
    ("podium.media.v1.RecordingChunk", "on `podium.media.recording.v1`"),
    ("podium.media.v1.RelayedFrame", "inside a `RecordingChunk`"),
    ("podium.presence.v1.HeartbeatBatch", "on `podium.presence.heartbeats.v1` (internal)"),
)


def _example(name: str) -> str:
    message = _filled(message_class(name)())
    example = json_format.MessageToDict(message)
    for key, value in EXAMPLES.get(name, {}).items():
        if value is None:
            example.pop(key, None)
        else:
            example[key] = value
    json_format.ParseDict(example, message_class(name)())  # every name and value must fit the schema
    return json.dumps(example, indent=2)


def _filled(message):
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry:
                continue
            target = getattr(message, field.name)
            if field.message_type.full_name == "google.protobuf.Timestamp":
                target.FromJsonString("2026-11-24T12:00:00Z")
            elif field.message_type.full_name == "google.protobuf.Duration":
                target.FromJsonString("1800s")
            continue
        if field.enum_type is not None:
            value = field.enum_type.values[min(1, len(field.enum_type.values) - 1)].number
        elif field.type == field.TYPE_BOOL:
            value = True
        elif field.type == field.TYPE_STRING:
            value = f"example-{field.name.replace('_', '-')}"
        elif field.type == field.TYPE_BYTES:
            value = b"example"
        else:
            value = 1
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)
    return message


def _message_table(file, index: int, comments: dict, full: str) -> list[str]:
    """A message's field table; every field must have a meaning (a comment in its .proto)."""
    message = file.message_type[index]
    lines = ["| Field | Type | Meaning |", "|---|---|---|"]
    maps = {f".{full}.{n.name}": n for n in message.nested_type if n.options.map_entry}
    for f_index, field in enumerate(message.field):
        if field.type_name in maps:
            key, value = maps[field.type_name].field
            kind = f"map<{_kind(key)}, {_kind(value)}>"
        else:
            kind = _kind(field)
            if field.label == field.LABEL_REPEATED:
                kind = f"repeated {kind}"
        if field.proto3_optional:
            kind = f"optional {kind}"
        meaning = comments.get((4, index, 2, f_index), "")
        if not meaning:
            raise SystemExit(f"{full}.{field.name} has no comment in {file.name}: say what it means")
        lines.append(f"| `{field.name}` | `{kind}` | {meaning} |")
    return lines


def _kind(field) -> str:
    return field.type_name.lstrip(".") if field.type_name else TYPES[field.type]


def render() -> str:
    settings = PodiumSettings()
    lines = [
        HEADER,
        "## Topics",
        "",
        "| Topic | Partitions | Retention | Cleanup | Contents |",
        "|---|---|---|---|---|",
    ]
    for topic in ALL_TOPICS:
        retention = "forever" if topic.retention_ms < 0 else f"{topic.retention_ms / 3_600_000:g} h"
        lines.append(
            f"| `{topic.name}` | {settings.topic_partitions} (`PODIUM_TOPIC_PARTITIONS`) | {retention} "
            f"| {topic.cleanup_policy} | {topic.description} |"
        )
    lines.append("")
    files = sorted(descriptor_set().file, key=lambda f: f.name)  # protoc orders by imports
    where = {f"{f.package}.{m.name}": (f, i) for f in files for i, m in enumerate(f.message_type)}
    for file in files:
        if not file.name.endswith("_events.proto"):
            continue
        comments = _comments(file)
        lines += [f"## `{file.package}` ({file.name})", ""]
        for index, message in enumerate(file.message_type):
            full = f"{file.package}.{message.name}"
            lines += [f"### `{full}`", ""]
            if comments.get((4, index)):
                lines += [comments[(4, index)], ""]
            lines += _message_table(file, index, comments, full)
            lines += ["", "Example payload (JSON):", "", "```json", _example(full), "```", ""]
    lines += [
        "## Other records",
        "",
        "The envelope, and the records that are plain protobuf messages rather than events in an envelope.",
        "",
    ]
    for full, place in OTHER_RECORDS:
        file, index = where[full]
        comments = _comments(file)
        lines += [f"### `{full}`", "", f"In `{file.name}`, {place}."]
        if comments.get((4, index)):
            lines += ["", comments[(4, index)]]
        lines.append("")
        if file.message_type[index].field:
            lines += _message_table(file, index, comments, full)
            lines += ["", "Example (JSON):", "", "```json", _example(full), "```", ""]
        else:
            lines += ["No fields.", ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/events.md is stale")
    text = render()
    if parser.parse_args().check:
        if not OUT.exists() or OUT.read_text() != text:
            sys.exit("docs/events.md is stale: run `python -m libs.contracts.catalogue` and commit it")
        print("docs/events.md is current")
        return
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

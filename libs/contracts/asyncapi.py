"""Writes docs/asyncapi.json, an AsyncAPI 3.0 description of every Podium topic.

Built from the same source as docs/events.md (the protos and libs/events/topics.py).
What it says is what is on the wire: a record's value is protobuf, so each
message's payload is a protobuf schema (`application/vnd.google.protobuf;version=3`,
the .proto file that defines it, whose imports resolve against `protos/` or the
published descriptor set `docs/podium.binpb`), with the record key and headers
beside it. On the event topics the value is an `EventEnvelope` whose `payload`
(a `google.protobuf.Any`) holds the event: each event type is a message of its
own, naming the type in `x-payload-type` and giving that type's protobuf JSON
mapping in `x-payload-json-schema` (the shape `podium events tail --json` and
the webhooks print).

`--check` fails when the committed file is stale; `--validate` checks it against
the AsyncAPI 3.0.0 JSON Schema (from npm's @asyncapi/specs, which CI installs).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2

from libs.config.settings import PodiumSettings
from libs.contracts.catalogue import _comments, descriptor_set
from libs.contracts.codegen import PROTOS, ROOT
from libs.events import topics as t

OUT = ROOT / "docs" / "asyncapi.json"
SCHEMA = ROOT / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0-without-$id.json"
PROTOBUF = "application/vnd.google.protobuf;version=3"
ENVELOPE = "podium.common.v1.EventEnvelope"
KINDS = {v: k.removeprefix("TYPE_").lower() for k, v in descriptor_pb2.FieldDescriptorProto.Type.items()}
SCALARS = {
    "string": {"type": "string"},
    "bool": {"type": "boolean"},
    "double": {"type": "number"},
    "float": {"type": "number"},
    "bytes": {"type": "string", "contentEncoding": "base64"},
    **{k: {"type": "integer"} for k in ("int32", "uint32", "sint32", "fixed32", "sfixed32")},
    **{
        k: {"type": "string", "description": "a 64-bit integer, as a string in JSON"}
        for k in ("int64", "uint64", "sint64", "fixed64", "sfixed64")
    },
}

SPACE_KEY = {
    "type": "string",
    "description": "The Space id (UTF-8), so one Space's records share a partition.",
}
NO_HEADERS = {"type": "object", "description": "None.", "properties": {}}
TRACE_HEADERS = {
    "type": "object",
    "description": "Set by the outbox relay that publishes the event; each is optional.",
    "properties": {
        "traceparent": {
            "type": "string",
            "description": "W3C trace context of the publish span (continues the envelope's `traceparent`).",
        },
        "tracestate": {"type": "string", "description": "W3C trace state, when there is one."},
    },
}
TYPE_HEADER = {
    "type": "object",
    "properties": {
        "podium-type": {
            "type": "string",
            "description": "The full protobuf name of the value's type, e.g. `podium.analytics.v1.SpaceStats`.",
        }
    },
    "required": ["podium-type"],
}


@dataclass(frozen=True)
class Channel:
    """One topic: its id in the document, the protobuf file of its events (event topics), or the one
    message type its records carry (other topics), and its key and headers."""

    id: str
    topic: t.TopicSpec
    events_file: str = ""  # an *_events.proto: records are EventEnvelopes holding its messages
    value_type: str = ""  # otherwise: every record's value is this message (or, empty, see `note`)
    key: dict | None = None
    headers: dict | None = None
    note: str = ""


CHANNELS = (
    Channel("roomEvents", t.ROOM_EVENTS, "podium/room/v1/room_events.proto", headers=TRACE_HEADERS),
    Channel(
        "moderationEvents",
        t.MODERATION_EVENTS,
        "podium/moderation/v1/moderation_events.proto",
        key={
            "type": "string",
            "description": "The Space id; for `UserBlocked` and `UserUnblocked`, the blocking host's user id.",
        },
        headers=TRACE_HEADERS,
    ),
    Channel(
        "presenceEvents",
        t.PRESENCE_EVENTS,
        "podium/presence/v1/presence_events.proto",
        headers={**NO_HEADERS, "description": "None: presence's stream processor writes them directly."},
    ),
    Channel("mediaEvents", t.MEDIA_EVENTS, "podium/media/v1/media_events.proto", headers=TRACE_HEADERS),
    Channel("replayEvents", t.REPLAY_EVENTS, "podium/replay/v1/replay_events.proto", headers=TRACE_HEADERS),
    Channel(
        "presenceHeartbeats",
        t.PRESENCE_HEARTBEATS,
        value_type="podium.presence.v1.HeartbeatBatch",
        key={
            "type": "string",
            "description": "The Space id for a heartbeat; no key for a pulse, a gateway loss or a tick, "
            "which are written to each partition.",
        },
        note="The record's timestamp (when presence wrote it) is the evidence time of time-outs.",
    ),
    Channel(
        "mediaRecording",
        t.MEDIA_RECORDING,
        value_type="podium.media.v1.RecordingChunk",
        note="Deduplicate by (`relay_id`, `space_id`, `chunk_sequence`).",
    ),
    Channel("analyticsSpaceStats", t.ANALYTICS_SPACE_STATS, value_type="podium.analytics.v1.SpaceStats"),
    Channel(
        "analyticsListenersPerMinute",
        t.ANALYTICS_LISTENERS_PER_MINUTE,
        value_type="podium.analytics.v1.ListenersInWindow",
    ),
    Channel(
        "analyticsTicks",
        t.ANALYTICS_TICKS,
        value_type="podium.analytics.v1.AnalyticsTick",
        key={"type": "null", "description": "None: one tick is written to each partition."},
    ),
    Channel(
        "deadLetter",
        t.DEAD_LETTER,
        value_type=ENVELOPE,
        key={"type": "string", "description": "The original record's key, unchanged."},
        headers={
            "type": "object",
            "properties": {
                "podium.reason": {
                    "type": "string",
                    "description": "Why it was dead-lettered (at most 1,000 bytes).",
                },
                "podium.source": {
                    "type": "string",
                    "description": "Where it came from: `<topic>:<partition>:<offset>`.",
                },
                "podium.consumer": {
                    "type": "string",
                    "description": "The projection that could not decode or apply it.",
                },
            },
            "required": ["podium.reason", "podium.source", "podium.consumer"],
        },
        note="The value is the original record's bytes, unchanged: usually an EventEnvelope, but it may be "
        "whatever failed to decode as one.",
    ),
)


def _changelog_channels() -> tuple[Channel, ...]:
    return tuple(
        Channel(
            "changelog" + "".join(part.capitalize() for part in spec.name.replace("-", " ").split()),
            spec,
            key={"type": "string", "description": "The table's key (UTF-8)."},
            note="Internal: faust's changelog of a table (values in faust's JSON encoding, a tombstone "
            "deletes), read back only to restore the table. Not a contract: do not consume it.",
        )
        for spec in t.FAUST_CHANGELOGS
    )


def _field_schema(
    field, enums: dict[str, list[str]], maps: dict[str, descriptor_pb2.DescriptorProto]
) -> dict:
    name = field.type_name.lstrip(".")
    if name in maps:
        value = maps[name].field[1]
        return {"type": "object", "additionalProperties": _field_schema(value, enums, maps)}
    if name == "google.protobuf.Timestamp":
        schema = {"type": "string", "format": "date-time"}
    elif name in enums:
        schema = {"type": "string", "enum": enums[name]}
    elif field.type == field.TYPE_MESSAGE:
        schema = {"type": "object", "description": f"a `{name}`"}
    else:
        schema = dict(SCALARS[KINDS[field.type]])
    if field.label == field.LABEL_REPEATED:
        return {"type": "array", "items": schema}
    return schema


def _json_schema(message, comments: dict, path: tuple, enums: dict, maps: dict) -> dict:
    properties = {}
    for f_index, field in enumerate(message.field):
        schema = _field_schema(field, enums, maps)
        if comments.get((*path, 2, f_index)):
            schema["description"] = comments[(*path, 2, f_index)]
        properties[field.json_name] = schema
    return {"type": "object", "properties": properties}


def _schema_id(file_name: str) -> str:
    return file_name.removesuffix(".proto").replace("/", ".")


def render() -> dict:
    files = descriptor_set().file
    by_name = {f.name: f for f in files}
    enums = {f"{f.package}.{e.name}": [v.name for v in e.value] for f in files for e in f.enum_type}
    maps = {
        f"{f.package}.{m.name}.{n.name}": n
        for f in files
        for m in f.message_type
        for n in m.nested_type
        if n.options.map_entry
    }
    file_of = {f"{f.package}.{m.name}": f for f in files for m in f.message_type}
    settings = PodiumSettings()
    channels, operations, messages, schemas = {}, {}, {}, {}

    def protobuf_schema(type_name: str) -> dict:
        file = file_of[type_name]
        schemas[_schema_id(file.name)] = {
            "schemaFormat": PROTOBUF,
            "schema": (PROTOS / file.name).read_text(),
        }
        return {"$ref": f"#/components/schemas/{_schema_id(file.name)}"}

    def message(key: str, summary: str, description: str, payload: dict, channel: Channel, **extra) -> dict:
        messages[key] = {
            "name": key.rsplit(".", 1)[-1],
            "title": key,
            "summary": summary,
            "description": description,
            "contentType": "application/x-protobuf",
            "payload": payload,
            "headers": channel.headers or NO_HEADERS,
            "bindings": {"kafka": {"key": channel.key or SPACE_KEY, "bindingVersion": "0.5.0"}},
            **extra,
        }
        return {"$ref": f"#/components/messages/{key}"}

    for channel in (*CHANNELS, *_changelog_channels()):
        refs = {}
        if channel.events_file:
            file = by_name[channel.events_file]
            comments = _comments(file)
            for index, event in enumerate(file.message_type):
                key = f"{file.package}.{event.name}"
                refs[event.name] = message(
                    key,
                    comments.get((4, index), event.name),
                    f"The record's value is a `{ENVELOPE}` (protobuf) whose `event_type` is `{key}` and whose "
                    f"`payload` (a `google.protobuf.Any`, type URL `type.googleapis.com/{key}`) holds the "
                    f"event, defined in `{file.name}`. `x-payload-json-schema` is the event's protobuf JSON "
                    "mapping.",
                    protobuf_schema(ENVELOPE),
                    channel,
                    **{
                        "x-payload-type": key,
                        "x-payload-protobuf": protobuf_schema(key),
                        "x-payload-json-schema": _json_schema(event, comments, (4, index), enums, maps),
                    },
                )
        elif channel.value_type:
            file = file_of[channel.value_type]
            index = [f"{file.package}.{m.name}" for m in file.message_type].index(channel.value_type)
            comments = _comments(file)
            name = channel.value_type.rsplit(".", 1)[-1]
            description = (
                f"The record's value is a `{channel.value_type}` (plain protobuf, not an envelope), "
                f"defined in `{file.name}`."
            )
            refs[name] = message(
                f"{channel.id}.{name}" if channel.value_type == ENVELOPE else channel.value_type,
                comments.get((4, index), name),
                " ".join(filter(None, (description, channel.note))),
                protobuf_schema(channel.value_type),
                channel,
                **{
                    "x-payload-type": channel.value_type,
                    "x-payload-json-schema": _json_schema(
                        file.message_type[index], comments, (4, index), enums, maps
                    ),
                },
            )
        else:
            refs["ChangelogEntry"] = message(
                f"{channel.id}.ChangelogEntry",
                "An entry of a faust table.",
                channel.note,
                {"type": "object", "description": "faust's JSON encoding of the table's value; internal."},
                channel,
            )
        channels[channel.id] = {
            "address": channel.topic.name,
            "description": " ".join(filter(None, (channel.topic.description, channel.note))),
            "messages": refs,
            "bindings": {
                "kafka": {
                    "partitions": channel.topic.partitions or settings.topic_partitions,
                    "topicConfiguration": {
                        "cleanup.policy": channel.topic.cleanup_policy.split(","),
                        "retention.ms": channel.topic.retention_ms,
                    },
                    "bindingVersion": "0.5.0",
                }
            },
        }
        operations[f"consume{channel.id[0].upper()}{channel.id[1:]}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel.id}"},
            "summary": f"Read {channel.topic.name}.",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Podium event stream",
            "version": "1.0.0",
            "description": (
                "Every topic of a Podium deployment. Values are protobuf: decode them with the protos "
                "(`protos/`) or the published descriptor set `docs/podium.binpb`, which holds every type "
                "and its imports (docs/analysts.md shows how, without Podium's code). Guarantees and the "
                "catalogue of events: docs/events.md."
            ),
        },
        "defaultContentType": "application/x-protobuf",
        "servers": {
            "dev": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The broker `podium up` starts (its address is printed at start).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/asyncapi.json is stale")
    parser.add_argument(
        "--validate", action="store_true", help="validate against the AsyncAPI 3.0.0 JSON Schema"
    )
    args = parser.parse_args()
    text = json.dumps(render(), indent=2, sort_keys=True) + "\n"
    if args.check and (not OUT.exists() or OUT.read_text() != text):
        sys.exit("docs/asyncapi.json is stale: run `python -m libs.contracts.asyncapi` and commit it")
    if not args.check:
        OUT.write_text(text)
        print(f"wrote {OUT.relative_to(ROOT)}")
    if args.validate:
        import jsonschema

        if not SCHEMA.exists():
            sys.exit(f"{SCHEMA} is missing: run `npm install` (package.json pins @asyncapi/specs)")
        jsonschema.validate(json.loads(text), json.loads(Path(SCHEMA).read_text()))
        print("docs/asyncapi.json is valid AsyncAPI 3.0.0")


if __name__ == "__main__":
    main()

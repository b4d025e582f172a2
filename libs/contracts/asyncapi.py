"""Writes docs/asyncapi.json, an AsyncAPI 3.0 description of Podium's event topics.

Built from the same source as docs/events.md (the protos and libs/events/topics.py).
`--check` fails when the committed file is stale; `--validate SCHEMA` checks it
against the AsyncAPI 3.0.0 JSON Schema (from npm's @asyncapi/specs, which CI installs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from libs.config.settings import PodiumSettings
from libs.contracts.catalogue import _comments, descriptor_set
from libs.contracts.codegen import ROOT
from libs.events.topics import MEDIA_EVENTS, MODERATION_EVENTS, PRESENCE_EVENTS, REPLAY_EVENTS, ROOM_EVENTS

OUT = ROOT / "docs" / "asyncapi.json"
SCHEMA = ROOT / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0-without-$id.json"
TOPIC_OF_PACKAGE = {
    "podium.room.v1": ("roomEvents", ROOM_EVENTS),
    "podium.moderation.v1": ("moderationEvents", MODERATION_EVENTS),
    "podium.presence.v1": ("presenceEvents", PRESENCE_EVENTS),
    "podium.media.v1": ("mediaEvents", MEDIA_EVENTS),
    "podium.replay.v1": ("replayEvents", REPLAY_EVENTS),
}
SCALARS = {
    "string": {"type": "string"},
    "bool": {"type": "boolean"},
    "int32": {"type": "integer"},
    "uint32": {"type": "integer"},
    "int64": {"type": "string", "description": "a 64-bit integer, as a string in JSON"},
    "uint64": {"type": "string", "description": "a 64-bit integer, as a string in JSON"},
}


def _field_schema(field, enums: dict[str, list[str]]) -> dict:
    from google.protobuf import descriptor_pb2

    kinds = {v: k.removeprefix("TYPE_").lower() for k, v in descriptor_pb2.FieldDescriptorProto.Type.items()}
    name = field.type_name.lstrip(".")
    if name == "google.protobuf.Timestamp":
        schema = {"type": "string", "format": "date-time"}
    elif name in enums:
        schema = {"type": "string", "enum": enums[name]}
    else:
        schema = dict(SCALARS.get(kinds[field.type], {"type": "string"}))
    if field.label == field.LABEL_REPEATED:
        return {"type": "array", "items": schema}
    return schema


def render() -> dict:
    files = descriptor_set().file
    enums = {f"{f.package}.{e.name}": [v.name for v in e.value] for f in files for e in f.enum_type}
    settings = PodiumSettings()
    channels, operations, messages = {}, {}, {}
    for file in files:
        if not file.name.endswith("_events.proto") or file.package not in TOPIC_OF_PACKAGE:
            continue
        channel_id, topic = TOPIC_OF_PACKAGE[file.package]
        comments = _comments(file)
        refs = {}
        for index, message in enumerate(file.message_type):
            key = f"{file.package}.{message.name}"
            properties = {}
            for f_index, field in enumerate(message.field):
                schema = _field_schema(field, enums)
                if comments.get((4, index, 2, f_index)):
                    schema["description"] = comments[(4, index, 2, f_index)]
                properties[field.json_name] = schema
            messages[key] = {
                "name": message.name,
                "title": key,
                "summary": comments.get((4, index), message.name),
                "contentType": "application/x-protobuf",
                "description": (
                    "Carried as the `payload` (google.protobuf.Any) of a podium.common.v1.EventEnvelope whose "
                    f"`event_type` is `{key}`; the schema below is its protobuf JSON mapping."
                ),
                "payload": {"type": "object", "properties": properties},
                "bindings": {"kafka": {"key": {"type": "string", "description": "The Space id."}}},
            }
            refs[message.name] = {"$ref": f"#/components/messages/{key}"}
        channels[channel_id] = {
            "address": topic.name,
            "description": topic.description,
            "messages": refs,
            "bindings": {
                "kafka": {
                    "partitions": settings.topic_partitions,
                    "topicConfiguration": {
                        "cleanup.policy": [topic.cleanup_policy],
                        "retention.ms": topic.retention_ms,
                    },
                }
            },
        }
        operations[f"consume{channel_id[0].upper()}{channel_id[1:]}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Analysts and services read {topic.name}.",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Podium event stream",
            "version": "1.0.0",
            "description": "Podium's published events. See docs/events.md for the guarantees.",
        },
        "defaultContentType": "application/x-protobuf",
        "servers": {
            "dev": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The broker `podium up` starts.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
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

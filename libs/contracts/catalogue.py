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

OUT = ROOT / "docs" / "events.md"
TYPES = {v: k.removeprefix("TYPE_").lower() for k, v in descriptor_pb2.FieldDescriptorProto.Type.items()}

HEADER = """# Event catalogue

Generated from `protos/` and `libs/events/topics.py` by `python -m libs.contracts.catalogue`;
CI fails when this file is stale. Do not edit by hand.

Every record's value is a `podium.common.v1.EventEnvelope` whose `payload` (a
`google.protobuf.Any`) holds one of the events below; `event_type` is the
payload's full name. Records are keyed by Space id (moderation's blocks: by the
blocking host's user id), so one Space's events from one producer stay in order.

Guarantees: per Space and producer, events arrive in `stream_version` order;
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


def _example(name: str) -> str:
    message = message_class(name)()
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None:
            if field.message_type.full_name == "google.protobuf.Timestamp":
                getattr(message, field.name).FromJsonString("2026-11-24T12:00:00Z")
            continue
        if field.enum_type is not None:
            value = field.enum_type.values[min(1, len(field.enum_type.values) - 1)].number
        elif field.type == field.TYPE_BOOL:
            value = True
        elif field.type == field.TYPE_STRING:
            value = f"example-{field.name.replace('_', '-')}"
        else:
            value = 1
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)
    return json.dumps(json_format.MessageToDict(message), indent=2)


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
    for file in sorted(descriptor_set().file, key=lambda f: f.name):  # protoc orders by imports
        if not file.name.endswith("_events.proto"):
            continue
        comments = _comments(file)
        lines += [f"## `{file.package}` ({file.name})", ""]
        for index, message in enumerate(file.message_type):
            full = f"{file.package}.{message.name}"
            lines += [f"### `{full}`", ""]
            if comments.get((4, index)):
                lines += [comments[(4, index)], ""]
            lines += ["| Field | Type | Meaning |", "|---|---|---|"]
            for f_index, field in enumerate(message.field):
                kind = field.type_name.lstrip(".") if field.type_name else TYPES[field.type]
                if field.label == field.LABEL_REPEATED:
                    kind = f"repeated {kind}"
                meaning = comments.get((4, index, 2, f_index), "")
                lines.append(f"| `{field.name}` | `{kind}` | {meaning} |")
            lines += ["", "Example payload (JSON):", "", "```json", _example(full), "```", ""]
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

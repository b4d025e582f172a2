"""The published contracts (docs/asyncapi.json, docs/podium.binpb) describe what is on the wire.

CI checks that both files are current (`--check`); these tests check what they say."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool

from libs.events.registry import event_types
from libs.events.topics import EVERY_TOPIC

DOCS = Path(__file__).resolve().parents[3] / "docs"


def _asyncapi() -> dict:
    return json.loads((DOCS / "asyncapi.json").read_text())


def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString((DOCS / "podium.binpb").read_bytes()).file:
        pool.Add(file)
    return pool


def test_asyncapi_describes_every_topic_a_deployment_has():
    addresses = {channel["address"] for channel in _asyncapi()["channels"].values()}
    assert addresses == {spec.name for spec in EVERY_TOPIC}


def test_every_event_is_described_as_an_envelope_in_protobuf_with_its_key_and_headers():
    document = _asyncapi()
    messages = document["components"]["messages"]
    for event_type in event_types():
        message = messages[event_type]
        assert message["x-payload-type"] == event_type
        envelope = message["payload"]["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][envelope]
        assert schema["schemaFormat"] == "application/vnd.google.protobuf;version=3"
        assert "message EventEnvelope" in schema["schema"]
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        assert message["headers"]["type"] == "object"


def test_the_descriptor_set_alone_resolves_every_type_the_asyncapi_document_names():
    pool = _pool()
    for message in _asyncapi()["components"]["messages"].values():
        if "x-payload-type" in message:
            name = message["x-payload-type"]
            assert pool.FindMessageTypeByName(name).full_name == name  # KeyError when missing
    assert pool.FindMessageTypeByName("podium.common.v1.EventEnvelope").fields_by_name["payload"]

"""The fetch wait: Kafka's default in production, the dev broker's 50 ms only where the dev stack
runs it (ADR 0016)."""

from __future__ import annotations

from types import SimpleNamespace

from libs.config.settings import PodiumSettings
from libs.devstack.broker import EmbeddedBroker
from libs.devstack.stack import Stack

VARIABLE = "PODIUM_KAFKA_FETCH_MAX_WAIT_MS"


def test_services_poll_at_kafkas_default_unless_the_dev_stack_runs_them_on_its_broker(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    assert PodiumSettings().kafka_fetch_max_wait_ms == 500

    database = SimpleNamespace(url="postgresql://postgres@127.0.0.1/podium")
    on_embedded = Stack(broker=EmbeddedBroker(port=9), bootstrap="127.0.0.1:9", database=database)
    on_kafka = Stack(bootstrap="kafka:9092", database=database)
    for process in on_kafka.plan_services():
        assert VARIABLE not in process.env, process.spec.name
    for process in on_embedded.plan_services():
        assert process.env[VARIABLE] == "50", process.spec.name
    monkeypatch.setenv(VARIABLE, on_embedded.plan_services()[0].env[VARIABLE])
    assert PodiumSettings().kafka_fetch_max_wait_ms == 50

"""The broker and the database the integration tests run against."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.config.settings import PodiumSettings
from libs.devstack.broker import EmbeddedBroker
from libs.events.topics import EVERY_TOPIC, create_topics
from libs.devstack.database import create_database, drop_database


class ExternalBroker:
    """A broker we did not start (KAFKA_BOOTSTRAP_SERVERS); it cannot be restarted from here."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    async def restart(self) -> None:
        pytest.skip("restarting the broker needs the embedded broker (unset KAFKA_BOOTSTRAP_SERVERS)")

    def stop(self) -> None:
        """Not ours to stop."""


@contextlib.asynccontextmanager
async def running_broker(
    log_dir: Path, *, external_ok: bool = True
) -> AsyncIterator[EmbeddedBroker | ExternalBroker]:
    """KAFKA_BOOTSTRAP_SERVERS if set (and `external_ok`), else an embedded broker on a free port."""
    if external_ok and os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        external = ExternalBroker(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
        await create_topics(external.bootstrap, EVERY_TOPIC, PodiumSettings().topic_partitions, 1)
        yield external
        return
    embedded = EmbeddedBroker(log_path=log_dir / f"broker-{uuid.uuid4().hex[:6]}.log")
    await embedded.start()
    # The test stack owns the topics, as `podium up` does in the dev stack: services never make them.
    await create_topics(embedded.bootstrap, EVERY_TOPIC, PodiumSettings().topic_partitions, 1)
    try:
        yield embedded
    finally:
        embedded.stop()


@contextlib.asynccontextmanager
async def fresh_database(server_url: str, prefix: str = "podium_test") -> AsyncIterator[str]:
    """A new, uniquely named database on the server; dropped (even with open connections) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = await create_database(server_url, name)
    try:
        yield url
    finally:
        await drop_database(server_url, name)

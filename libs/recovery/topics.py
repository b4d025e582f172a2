"""Topics, for a recovery: making every one with its partition count, and emptying some.

Only a recovery empties a topic (delete, then make again): the faust changelogs,
whose tables are then recomputed, and the topics a reseed fills again from the
event stores, which then hold each stored event once, in order, and nothing else.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient

from libs.config.settings import PodiumSettings
from libs.events.kafka_security import kafka_security
from libs.events.topics import EVERY_TOPIC, TopicSpec, create_topics


def spec_of(name: str) -> TopicSpec:
    """The catalogue's spec of topic `name` (one it does not know gets the defaults)."""
    return next((s for s in EVERY_TOPIC if s.name == name), TopicSpec(name, "made again by a recovery"))


async def make_topics(settings: PodiumSettings, specs: tuple[TopicSpec, ...] = EVERY_TOPIC) -> list[str]:
    """Creates the missing topics of `specs`, replacing any with the wrong partition count."""
    return await create_topics(
        settings.kafka_bootstrap_servers,
        specs,
        settings.topic_partitions,
        settings.topic_replication_factor,
        replace_mismatched=True,
        **kafka_security(settings),
    )


async def empty_topics(settings: PodiumSettings, specs: tuple[TopicSpec, ...]) -> list[str]:
    """Deletes those of `specs` that exist and makes them all again, empty. Returns the names."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **kafka_security(settings)
    )
    await admin.start()
    try:
        names = {s.name for s in specs}
        present = sorted(names & set(await admin.list_topics()))
        if present:
            await admin.delete_topics(present)
            async with asyncio.timeout(30):
                while names & set(await admin.list_topics()):
                    await asyncio.sleep(0.2)
    finally:
        await admin.close()
    await create_topics(
        settings.kafka_bootstrap_servers,
        specs,
        settings.topic_partitions,
        settings.topic_replication_factor,
        **kafka_security(settings),
    )
    return sorted(names)

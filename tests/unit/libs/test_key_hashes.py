"""The producers' partitioner remembers key hashes and must still choose what aiokafka's default
(Kafka's murmur2) chooses: a Space's events on the partition every Kafka client would put them on.
Fails if upstream changes how the default partitions."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner

from libs.events.kafka import KeyHashes


def test_the_partition_is_the_default_partitioners_for_every_key_and_partition_count():
    default, remembered = DefaultPartitioner(), KeyHashes(max_keys=50)
    keys = [str(uuid.UUID(int=n * 7919)).encode() for n in range(200)] + [b"", b"a", "é".encode()]
    for partitions in (1, 3, 12, 24, 100):
        everyone = list(range(partitions))
        for key in keys * 2:  # the second time from the remembered hash (or after a clear)
            assert remembered(key, everyone, everyone) == default(key, everyone, everyone)


def test_a_record_without_a_key_goes_to_an_available_partition():
    chosen = {KeyHashes()(None, [0, 1, 2, 3], [2, 3]) for _ in range(50)}
    assert chosen <= {2, 3}


def test_the_remembered_hashes_are_bounded():
    hashes = KeyHashes(max_keys=10)
    for n in range(100):
        hashes(str(n).encode(), [0, 1], [0, 1])
    assert len(hashes._hashes) <= 10

"""The Kafka client hooks of libs/events/kafka.py, on aiokafka's own metadata objects (no broker)."""

from __future__ import annotations

from types import SimpleNamespace

import aiokafka.client
from aiokafka import TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.conn import CloseReason
from aiokafka.protocol.metadata import MetadataResponse_v1

from libs.events.kafka import _forget_leaders_of_a_broken_connection, forget_leaders


def _cluster() -> ClusterMetadata:
    """Two brokers; topic a's partitions led by 1 and 2, topic b's by 1."""
    cluster = ClusterMetadata()
    cluster.update_metadata(
        MetadataResponse_v1(
            brokers=[(1, "h1", 9092, None), (2, "h2", 9092, None)],
            controller_id=1,
            topics=[
                (0, "a", False, [(0, 0, 1, [1], [1]), (0, 1, 2, [2], [2])]),
                (0, "b", False, [(0, 0, 1, [1], [1])]),
            ],
        )
    )
    return cluster


def test_forget_leaders_of_one_broker_leaves_the_others():
    cluster = _cluster()
    assert forget_leaders(cluster, 1) == {"a", "b"}
    assert cluster.leader_for_partition(TopicPartition("a", 0)) == -1
    assert cluster.leader_for_partition(TopicPartition("b", 0)) == -1
    assert cluster.leader_for_partition(TopicPartition("a", 1)) == 2
    assert cluster.partitions_for_broker(1) is None
    assert cluster.partitions_for_broker(2) == {TopicPartition("a", 1)}
    assert cluster.available_partitions_for_topic("a") == {1}
    assert cluster.partitions_for_topic("a") == {0, 1}  # still known: a write waits for a leader


def test_forget_every_leader():
    cluster = _cluster()
    assert forget_leaders(cluster) == {"a", "b"}
    assert cluster.available_partitions_for_topic("a") == set()
    assert cluster.available_partitions_for_topic("b") == set()


def _client(cluster: ClusterMetadata, conn, node, topics: set[str]):
    return SimpleNamespace(cluster=cluster, _conns={(node, 0): conn}, _topics=topics)


def test_a_broken_connection_forgets_its_leaders_and_asks_for_their_topics():
    forced = []
    conn = object()
    client = _client(_cluster(), conn, 1, {"a"})
    client.force_metadata_update = lambda: forced.append(1)
    _forget_leaders_of_a_broken_connection(client, conn, CloseReason.CONNECTION_BROKEN)
    assert client.cluster.leader_for_partition(TopicPartition("b", 0)) == -1
    assert client.cluster.leader_for_partition(TopicPartition("a", 1)) == 2
    # b was learned from an all-topics answer: the next requests must name it, or its batches wait
    assert client._topics == {"a", "b"}
    assert forced  # aiokafka's own handling still runs: a metadata update is asked for


def test_a_client_that_asks_for_every_topic_keeps_asking_for_every_topic():
    conn = object()
    client = _client(_cluster(), conn, 1, set())
    client.force_metadata_update = lambda: None
    _forget_leaders_of_a_broken_connection(client, conn, CloseReason.CONNECTION_BROKEN)
    assert client._topics == set()  # empty means all; naming two would narrow it
    assert client.cluster.leader_for_partition(TopicPartition("a", 0)) == -1


def test_a_connection_closed_on_purpose_forgets_nothing():
    conn = object()
    client = _client(_cluster(), conn, 1, {"a"})
    client.force_metadata_update = lambda: None
    _forget_leaders_of_a_broken_connection(client, conn, CloseReason.IDLE_DROP)
    assert client.cluster.leader_for_partition(TopicPartition("a", 0)) == 1


def test_metadata_requests_never_ask_for_a_topic_to_be_made():
    request = aiokafka.client.MetadataRequest(["a"])
    assert request._allow_auto_topic_creation is False  # what versions 4 and later send

"""A consistent-hash ring: which of several instances serves a key (a Space id).

Each instance is placed on the ring at `replicas` points (virtual nodes), each
the first 8 bytes of SHA-256 of "<instance id>#<n>". A key goes to the first
point at or after its own hash, wrapping around. Adding an instance moves only
the keys that now fall just before its points (about 1/N of them) and moves
them to the new instance; removing one moves only its own keys. Every process
that builds the ring from the same instance list agrees on every assignment.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    node_id: str
    address: str


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class HashRing:
    def __init__(self, nodes: list[Node] | tuple[Node, ...], replicas: int = 128):
        if not nodes:
            raise ValueError("a hash ring needs at least one node")
        ids = [n.node_id for n in nodes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"node ids must be unique: {ids}")
        self.nodes = tuple(nodes)
        points = sorted(
            (_hash(f"{node.node_id}#{i}"), node.node_id) for node in nodes for i in range(replicas)
        )
        self._hashes = [h for h, _ in points]
        self._owners = [node_id for _, node_id in points]
        self._by_id = {n.node_id: n for n in nodes}

    def node_for(self, key: str) -> Node:
        index = bisect.bisect_left(self._hashes, _hash(key))
        if index == len(self._hashes):
            index = 0
        return self._by_id[self._owners[index]]


def parse_nodes(spec: str) -> list[Node]:
    """ "relay-0=host:port,relay-1=host:port" -> nodes. Raises ValueError with the bad entry."""
    nodes = []
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        node_id, sep, address = (p.strip() for p in entry.partition("="))
        host, colon, port = address.rpartition(":")
        if not sep or not node_id or not colon or not host or not port.isdigit():
            raise ValueError(f"bad relay entry {entry!r}: expected id=host:port")
        nodes.append(Node(node_id, address))
    if not nodes:
        raise ValueError("no relays configured")
    return nodes

"""The consistent-hash ring that picks a Space's media relay."""

from __future__ import annotations

import pytest

from libs.routing.hash_ring import HashRing, Node, parse_nodes

SPACES = [f"space-{i}" for i in range(5000)]


def _ring(n: int) -> HashRing:
    return HashRing([Node(f"relay-{i}", f"10.0.0.{i}:50054") for i in range(n)])


def test_assignment_is_stable_and_independent_of_listing_order():
    a = _ring(4)
    b = HashRing(list(reversed(a.nodes)))
    assert all(a.node_for(s) == b.node_for(s) == a.node_for(s) for s in SPACES)


def test_load_is_spread_across_relays():
    ring = _ring(4)
    counts: dict[str, int] = {}
    for s in SPACES:
        counts[ring.node_for(s).node_id] = counts.get(ring.node_for(s).node_id, 0) + 1
    assert set(counts) == {f"relay-{i}" for i in range(4)}
    assert min(counts.values()) > len(SPACES) / 4 * 0.6


def test_adding_a_relay_moves_only_about_one_share_and_only_to_it():
    before, after = _ring(4), _ring(5)
    moved = [s for s in SPACES if before.node_for(s) != after.node_for(s)]
    assert all(after.node_for(s).node_id == "relay-4" for s in moved)
    assert 0.1 * len(SPACES) < len(moved) < 0.3 * len(SPACES)  # ideal: 1/5


def test_removing_a_relay_moves_only_its_spaces():
    before = _ring(5)
    after = HashRing([n for n in before.nodes if n.node_id != "relay-2"])
    for s in SPACES:
        if before.node_for(s).node_id != "relay-2":
            assert after.node_for(s) == before.node_for(s)


def test_parse_nodes_reads_the_setting_and_refuses_bad_entries():
    assert parse_nodes("relay-0=127.0.0.1:50054, relay-1=h:1") == [
        Node("relay-0", "127.0.0.1:50054"),
        Node("relay-1", "h:1"),
    ]
    for bad in ("", "relay-0", "relay-0=host", "=h:1", "r=h:port"):
        with pytest.raises(ValueError):
            parse_nodes(bad)
    with pytest.raises(ValueError):
        HashRing(parse_nodes("a=h:1,a=h:2"))

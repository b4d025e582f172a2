"""How a Space's presence is split into parts (services/presence/domain/parts.py)."""

import pytest

from libs.streams.faust_app import partition_of
from services.presence.domain.parts import events_stream, grown, part_key, part_keys, part_of, user_key


def test_a_space_not_split_is_its_part_0_under_its_own_id():
    assert part_keys("s-1", 1) == ["s-1"]
    assert user_key("s-1", "anyone", 1) == "s-1"
    assert events_stream(user_key("s-1", "anyone", 1)) == "presence-s-1"


def test_every_user_is_in_one_part_of_the_same_space_in_every_process():
    keys = part_keys("s-1", 8)
    assert keys == ["s-1", *(f"s-1/p{k}" for k in range(1, 8))]
    users = [f"user-{n}" for n in range(2000)]
    parts = [part_of(u, 8) for u in users]
    assert [user_key("s-1", u, 8) for u in users] == [keys[p] for p in parts]
    # CRC-32 of the id, not Python's salted hash: the same part in every process and release.
    assert [part_of(u, 8) for u in ("alice", "bob", "carol")] == [7, 0, 3]
    # Spread evenly enough that parts share a Space's load, and their keys over partitions.
    assert min(parts.count(p) for p in range(8)) > 2000 / 8 * 0.8
    assert len({partition_of(k, 24) for k in keys}) >= 6


def test_doubling_moves_a_user_only_to_the_part_its_old_part_splits_into():
    for user in (f"user-{n}" for n in range(500)):
        before, after = part_of(user, 4), part_of(user, 8)
        assert after in (before, before + 4)


def test_a_space_splits_in_doubles_while_part_0_holds_more_than_its_share():
    assert grown(1, 50_000, 50_000, 64) == 1
    assert grown(1, 50_001, 50_000, 64) == 2
    assert grown(1, 400_000, 50_000, 64) == 8  # one big report: all the doublings it needs at once
    assert grown(2, 50_001, 50_000, 64) == 4  # part 0 speaks for every part
    assert grown(32, 10**9, 50_000, 64) == 64  # never beyond the most
    assert grown(4, 10, 50_000, 64) == 4  # never fewer


def test_a_part_out_of_range_is_refused():
    with pytest.raises(ValueError):
        part_key("s-1", 8, 8)

"""`podium report` of a Space whose listeners join and leave on shard streams (ADR 0012), read as
`libs.events.tail` reads the room topic: each event once, in the log's order.

In the room's order (each stream's relay publishing as the room committed) the report is the one
stream's. In any other interleaving what it counts is the same; what accrues with time (listener
minutes, peaks, time in a speaking role) follows the log's order, as analytics' SpaceStats do, which
fold the same partition with the same code.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from libs.analytics.space_report import build
from libs.events.envelope import Causation, wrap
from libs.events.tail import in_log_order
from tests.support.sharded_log import merged, on_streams
from tests.unit.analytics.test_space_report import SCRIPT, S
from tests.unit.libs.test_sharded_history import redelivered

LOG = on_streams(S, SCRIPT, 4)


def read(order, rng: random.Random) -> list:
    """`order` delivered as an at-least-once log holds it, read as `podium report` reads it."""
    cause = Causation("someone", "c", "c")
    envelopes = {
        (i.stream_id, i.version): wrap(
            i.payload, producer="room", stream_id=i.stream_id, version=i.version, space_id=S,
            occurred_at=i.at, causation=cause,
        )
        for i in LOG
    }  # fmt: skip
    got = in_log_order((envelopes[(i.stream_id, i.version)], i.payload) for i in redelivered(order, rng))
    return [(e.payload, e.at) for e in got]


def test_the_script_is_on_several_streams():
    assert len({i.stream_id for i in LOG}) >= 3


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32))
def test_a_sharded_space_in_the_rooms_order_reports_as_on_one_stream_whatever_is_delivered_twice(seed):
    assert build(S, read(LOG, random.Random(seed))) == build(S, SCRIPT)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32))
def test_in_any_interleaving_the_counts_are_the_one_streams(seed):
    rng = random.Random(seed)
    report, one_stream = build(S, read(merged(LOG, rng), rng)), build(S, SCRIPT)
    counted = ("title", "host_user_id", "joins_by_source", "speak_requests", "speak_requests_approved")
    for name in counted:
        assert getattr(report, name) == getattr(one_stream, name), name

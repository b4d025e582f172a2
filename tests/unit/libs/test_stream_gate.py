"""StreamGate: whatever duplicates and reorderings arrive, each stream is applied once, in order."""

from hypothesis import given
from hypothesis import strategies as st

from libs.projection.ordering import StreamGate, Verdict


def test_in_order_events_apply_and_duplicates_do_not():
    gate = StreamGate()
    assert gate.offer(("p", "s"), 1, "e1") == (Verdict.APPLY, ["e1"])
    assert gate.offer(("p", "s"), 1, "e1") == (Verdict.DUPLICATE, [])
    assert gate.offer(("p", "s"), 3, "e3") == (Verdict.HELD, [])
    assert gate.offer(("p", "s"), 2, "e2") == (Verdict.APPLY, ["e2", "e3"])
    assert gate.held_count == 0
    assert gate.offer(("other", "s"), 1, "o1") == (Verdict.APPLY, ["o1"])


def test_a_stream_can_start_where_its_consumer_stands_and_give_up_on_a_gap():
    gate = StreamGate()
    gate.start_at(("p", "s"), 5)  # the consumer's table has folded 1..5
    assert gate.offer(("p", "s"), 5, "e5") == (Verdict.DUPLICATE, [])
    assert gate.offer(("p", "s"), 8, "e8") == (Verdict.HELD, [])
    assert gate.offer(("p", "s"), 7, "e7") == (Verdict.HELD, [])
    assert gate.held_streams() == [("p", "s")]
    assert gate.release(("p", "s")) == ["e7", "e8"]  # 6 never came
    assert gate.held_count == 0 and gate.held_streams() == []
    assert gate.offer(("p", "s"), 6, "e6") == (Verdict.DUPLICATE, [])
    assert gate.offer(("p", "s"), 9, "e9") == (Verdict.APPLY, ["e9"])
    assert gate.release(("p", "s")) == []
    gate.forget(("p", "s"))
    assert gate.offer(("p", "s"), 1, "e1") == (Verdict.APPLY, ["e1"])


@st.composite
def deliveries(draw):
    """Several streams' events, each delivered one or more times, in any order that
    eventually includes every version (at-least-once, with redelivery and gaps)."""
    streams = {f"s{i}": draw(st.integers(1, 8)) for i in range(draw(st.integers(1, 4)))}
    records = [(s, v) for s, n in streams.items() for v in range(1, n + 1)]
    extra = draw(st.lists(st.sampled_from(records), max_size=20))
    return streams, draw(st.permutations(records + extra))


@given(deliveries())
def test_any_redelivery_and_order_applies_each_stream_exactly_once_in_order(case):
    streams, arrivals = case
    gate = StreamGate()
    applied: dict[str, list[int]] = {}
    for stream, version in arrivals:
        _, ready = gate.offer(("p", stream), version, version)
        applied.setdefault(stream, []).extend(ready)
    assert {s: applied.get(s, []) for s in streams} == {s: list(range(1, n + 1)) for s, n in streams.items()}
    assert gate.held_count == 0

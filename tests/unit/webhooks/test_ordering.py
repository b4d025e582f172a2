"""The ordering rule: per webhook and Space, only the head is attempted, and a run is the head
and the due, free deliveries right behind it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.webhooks.domain.ordering import Candidate, runs


def c(delivery_id: int, space: str = "s1", *, webhook: str = "w1", due: bool = True, held: bool = False):
    return Candidate(delivery_id, webhook, space, due, held)


def test_a_queue_is_sent_in_order_from_its_head():
    assert runs([c(3), c(1), c(2)], max_run=10) == [[1, 2, 3]]


def test_nothing_of_a_queue_is_sent_while_its_head_waits_for_its_backoff_or_is_held_elsewhere():
    assert runs([c(1, due=False), c(2), c(3)], max_run=10) == []
    assert runs([c(1, held=True), c(2), c(3)], max_run=10) == []


def test_a_run_stops_before_the_first_delivery_that_is_not_due_or_is_held():
    assert runs([c(1), c(2), c(3, due=False), c(4)], max_run=10) == [[1, 2]]
    assert runs([c(1), c(2, held=True), c(3)], max_run=10) == [[1]]


def test_a_run_is_at_most_max_run_long():
    assert runs([c(i) for i in range(1, 8)], max_run=3) == [[1, 2, 3]]


def test_queues_of_other_spaces_and_other_webhooks_go_on_independently():
    found = runs(
        [c(1, "s1", due=False), c(2, "s1"), c(3, "s2"), c(4, "s2"), c(5, "s1", webhook="w2")], max_run=10
    )
    assert sorted(found) == [[3, 4], [5]]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["s1", "s2", "s3"]), st.sampled_from(["w1", "w2"]), st.booleans(), st.booleans()
        ),
        max_size=40,
    ),
    st.integers(1, 10),
)
def test_every_run_is_a_prefix_of_its_queue_from_its_head(rows, max_run):
    candidates = [
        c(i, space, webhook=webhook, due=due, held=held) for i, (space, webhook, due, held) in enumerate(rows)
    ]
    queues: dict[tuple[str, str], list[Candidate]] = {}
    for candidate in candidates:
        queues.setdefault((candidate.webhook_id, candidate.space_id), []).append(candidate)
    found = runs(candidates, max_run)
    assert len(found) == len({tuple(r) for r in found})
    for run in found:
        first = next(x for x in candidates if x.delivery_id == run[0])
        queue = queues[(first.webhook_id, first.space_id)]
        assert run == [x.delivery_id for x in queue[: len(run)]]  # in order, from the head, no gaps
        assert all(x.due and not x.held for x in queue[: len(run)])
        assert len(run) <= max_run
    sent = {i for run in found for i in run}
    for queue in queues.values():
        head = queue[0]
        assert (head.delivery_id in sent) == (head.due and not head.held)

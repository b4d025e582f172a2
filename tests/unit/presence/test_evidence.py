"""Time-outs on evidence: a user is timed out only when the heartbeat records show them gone, never
because presence (or the broker) stopped; and the brake on mass removal."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.presence.domain.evidence import Evidence, forget_gateway, judge, lagging, observe, overdue
from services.presence.domain.space_presence import PresenceRules, beat, empty

TIMEOUT = 3.0
RULES = PresenceRules(
    timeout_seconds=TIMEOUT,
    gap_seconds=TIMEOUT / 2,
    max_lag_seconds=TIMEOUT / 2,
    brake_share=0.5,
    brake_min_users=3,
    brake_max_users=100,
    brake_hold_seconds=TIMEOUT,
)


class Partition:
    """One partition as the stream processor reads it: records in log order, ticks in between."""

    def __init__(self, rules: PresenceRules = RULES):
        self.rules = rules
        self.evidence = Evidence()
        self.spaces: dict[str, dict] = {}
        self.timed_out: list[tuple[str, str, bool]] = []  # (space, user, mass)

    def report(self, gateway: str, space: str, users: list[str], at: float) -> None:
        observe(self.evidence, gateway, at, self.rules)
        state = self.spaces.setdefault(space, empty(space))
        beat(state, gateway, users, at, self.rules)

    def pulse(self, gateway: str, at: float) -> None:
        observe(self.evidence, gateway, at, self.rules)

    def others_report(self, start: float, end: float) -> None:
        """Another gateway's records every half second: the partition's records are continuous."""
        t = start
        while t <= end:
            self.pulse("another-gateway", t)
            t += 0.5

    def tick(self) -> list[tuple[str, str, bool]]:
        judgement = judge(self.spaces, self.evidence, self.rules)
        out = [(s, e.user_id, e.mass_time_out) for s, events in judgement.events.items() for e in events]
        self.timed_out += out
        return out

    def present(self, space: str) -> set[str]:
        return set(self.spaces[space]["present"])


def test_a_user_the_gateway_stops_reporting_is_timed_out_once_its_reports_pass_the_deadline():
    p = Partition()
    p.report("gw", "s", ["a", "b", "c", "d"], 0.0)
    for t in (1.0, 2.0, 3.0):
        p.report("gw", "s", ["b", "c", "d"], t)
        assert p.tick() == []  # the deadline (0 + 3) is not past
    p.report("gw", "s", ["b", "c", "d"], 3.5)
    assert p.tick() == [("s", "a", False)]
    assert p.present("s") == {"b", "c", "d"}


def test_a_report_for_another_space_of_the_partition_is_evidence_too():
    p = Partition()
    p.report("gw", "s1", ["a"], 0.0)
    p.report("gw", "s2", ["b"], 0.0)
    for t in (1.0, 2.0, 3.0, 4.0):
        p.report("gw", "s2", ["b"], t)
    assert p.tick() == [("s1", "a", False)]


def test_a_pulse_is_evidence_about_a_gateway_that_holds_nobody_else_here():
    p = Partition()
    p.report("gw", "s", ["a"], 0.0)
    for t in (1.0, 2.0, 3.0):
        p.pulse("gw", t)
    assert p.tick() == []
    p.pulse("gw", 3.1)
    assert p.tick() == [("s", "a", False)]


def test_ticks_are_not_evidence_however_many_come():
    p = Partition()
    p.report("gw", "s", ["a"], 0.0)
    for _ in range(100):  # the stream reads tick after tick, and no gateway record
        assert p.tick() == []
    assert p.present("s") == {"a"}


def test_presence_paused_past_the_timeout_times_nobody_out_when_it_resumes():
    """The issue's case: presence frozen 9 s (3x the timeout) while the gateway kept reporting. Its
    queued reports are written at resume, one record per Space, and a tick lands between them."""
    p = Partition()
    spaces = {"s1": ["h1", "l1", "l2"], "s2": ["h2", "l3", "l4"], "s3": ["h3", "l5"]}
    for t in (0.0, 0.5, 1.0):
        for space, users in spaces.items():
            p.report("gw", space, users, t)
        assert p.tick() == []
    resumed = 10.0  # nothing was written in between
    for space, users in spaces.items():
        p.report("gw", space, users, resumed)
        assert p.tick() == []  # s2 and s3 not yet reported again, s1 already: nobody late
    assert p.timed_out == []


def test_a_gateway_silent_while_others_report_is_dead_and_its_users_go():
    p = Partition()
    p.report("alive", "s", ["a1", "a2", "a3", "a4", "a5"], 0.0)
    p.report("dead", "s", ["d1", "d2"], 0.0)
    for t in (1.0, 2.0, 3.0):
        p.report("alive", "s", ["a1", "a2", "a3", "a4", "a5"], t)
        assert p.tick() == []
    p.report("alive", "s", ["a1", "a2", "a3", "a4", "a5"], 3.2)
    assert sorted(p.tick()) == [("s", "d1", False), ("s", "d2", False)]
    assert p.present("s") == {"a1", "a2", "a3", "a4", "a5"}


def test_when_every_gateway_falls_silent_nobody_is_timed_out():
    p = Partition()
    p.report("gw1", "s", ["a"], 0.0)
    p.report("gw2", "s", ["b"], 0.5)
    for _ in range(10):
        assert p.tick() == []  # the input is silent as a whole: no evidence about anyone


def test_a_gateway_that_said_it_is_gone_is_forgotten_by_the_evidence():
    p = Partition()
    p.report("gw", "s", ["a"], 0.0)
    forget_gateway(p.evidence, "gw")
    assert "gw" not in p.evidence.gateways


def test_after_a_restart_time_counts_from_the_first_record_read():
    """Values restored from the changelog may have old last-seen times: the deadline counts from the
    first record this process read on the partition."""
    p = Partition()
    p.spaces["s"] = empty("s")
    beat(p.spaces["s"], "gw", ["a", "b"], 0.0, RULES)  # as restored
    for t in (100.0, 101.0, 102.0, 103.0):
        p.report("gw", "s", ["b"], t)
        assert p.tick() == []
    p.report("gw", "s", ["b"], 103.5)
    assert p.tick() == [("s", "a", False)]


def test_a_record_written_earlier_than_the_watermark_does_not_move_it_back():
    evidence = Evidence()
    observe(evidence, "gw1", 10.0, RULES)
    observe(evidence, "gw2", 9.0, RULES)
    assert (evidence.watermark, evidence.since, evidence.gateways) == (10.0, 10.0, {"gw1": 10.0, "gw2": 9.0})


def test_a_gap_in_the_records_counts_against_nobody():
    evidence = Evidence()
    observe(evidence, "gw", 0.0, RULES)
    observe(evidence, "gw", 1.0, RULES)
    assert evidence.since == 0.0
    observe(evidence, "gw", 1.0 + RULES.gap_seconds + 0.1, RULES)
    assert evidence.since == 1.0 + RULES.gap_seconds + 0.1
    state = empty("s")
    beat(state, "gw", ["a"], 0.5, RULES)
    assert overdue(state, evidence, RULES) == []


# The brake


def test_the_brake_holds_a_mass_time_out_for_one_period_and_then_lets_it_go_marked():
    p = Partition()
    everyone = [f"u{i}" for i in range(8)]
    p.report("gw", "s", everyone, 0.0)
    p.others_report(0.0, 3.5)
    p.report("gw", "s", ["u0"], 3.5)  # 7 of 8 overdue at once
    assert p.tick() == []
    assert set(p.spaces["s"]["held"]) == set(everyone[1:])
    p.others_report(4.0, 5.0)
    p.report("gw", "s", ["u0"], 5.0)
    assert p.tick() == []  # held for a timeout of evidence time: until 6.5
    p.others_report(5.5, 6.5)
    p.report("gw", "s", ["u0"], 6.6)
    assert sorted(p.tick()) == [("s", u, True) for u in everyone[1:]]
    assert "held" not in p.spaces["s"]


def test_users_who_beat_during_the_hold_are_not_timed_out():
    p = Partition()
    everyone = [f"u{i}" for i in range(8)]
    p.report("gw", "s", everyone, 0.0)
    p.others_report(0.0, 3.5)
    p.report("gw", "s", ["u0"], 3.5)
    assert p.tick() == []
    p.report("gw", "s", everyone[:6], 4.0)  # six come back; u6 and u7 do not
    assert p.tick() == []
    assert set(p.spaces["s"]["held"]) == {"u6", "u7"}
    p.others_report(4.0, 6.5)
    p.report("gw", "s", everyone[:6], 6.6)
    assert sorted(p.tick()) == [("s", "u6", True), ("s", "u7", True)]
    assert p.present("s") == set(everyone[:6])


def test_a_small_share_or_a_small_number_is_not_braked():
    p = Partition()
    p.report("gw", "big", [f"u{i}" for i in range(10)], 0.0)
    p.report("gw", "pair", ["host", "guest"], 0.0)
    p.report("gw", "alone", ["solo"], 0.0)
    p.others_report(0.0, 3.5)
    p.report("gw", "big", [f"u{i}" for i in range(6)], 3.5)  # 4 of 10: not more than half
    p.report("gw", "pair", ["host"], 3.5)  # 1 of 2
    assert sorted(p.tick()) == sorted(
        [("big", f"u{i}", False) for i in range(6, 10)] + [("pair", "guest", False), ("alone", "solo", False)]
    )


def test_more_than_the_total_on_a_partition_is_braked_whatever_the_shares():
    rules = PresenceRules(**{**RULES.__dict__, "brake_max_users": 5})
    p = Partition(rules)
    for i in range(6):
        p.report("gw", f"s{i}", [f"stays{i}", f"goes{i}", f"x{i}", f"y{i}"], 0.0)
    p.others_report(0.0, 3.5)
    for i in range(6):
        p.report("gw", f"s{i}", [f"stays{i}", f"x{i}", f"y{i}"], 3.5)  # 1 of 4 in each: 6 in all
    assert p.tick() == []
    assert sum(len(s.get("held", {})) for s in p.spaces.values()) == 6


# Degraded


def test_behind_its_input_or_with_silent_input_presence_concludes_nothing():
    evidence = Evidence()
    assert lagging(evidence, tick_at=100.0, wall_now=100.2, judging=False, rules=RULES) is None
    assert lagging(evidence, 100.0, 100.2, True, RULES) == "no heartbeats read yet"
    observe(evidence, "gw", 100.0, RULES)
    assert lagging(evidence, 100.0, 100.2, True, RULES) is None
    assert lagging(evidence, 100.0, 105.0, True, RULES) == "behind its input by 5.0 s"
    assert lagging(evidence, 104.9, 105.0, True, RULES) == "no heartbeats for 5.0 s"
    assert lagging(evidence, 104.9, 105.0, False, RULES) is None  # nobody to judge


# Properties


@st.composite
def reporting_histories(draw):
    """A gateway reporting every user of three Spaces of one partition, at most every third of the
    timeout, one record per Space per report; ticks anywhere; presence paused (reports queued, then
    written together at resume) and the broker paused (reports written on time, read late) anywhere."""
    steps = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("report"), st.floats(0.05, TIMEOUT / 3)),
                st.tuples(st.just("presence paused"), st.floats(0.1, 5 * TIMEOUT)),
                st.tuples(st.just("tick"), st.integers(0, 3)),
            ),
            min_size=1,
            max_size=30,
        )
    )
    return steps


@settings(max_examples=100, deadline=None)
@given(reporting_histories(), st.permutations(["s1", "s2", "s3"]))
def test_a_gateway_that_reports_everyone_loses_nobody_whatever_stops_in_between(steps, order):
    p = Partition()
    users = {"s1": ["h1", "a", "b", "c"], "s2": ["h2", "d"], "s3": ["h3", "e", "f", "g", "h"]}
    t = 0.0
    for space in order:
        p.report("gw", space, users[space], t)
    for kind, value in steps:
        if kind == "report":
            t += value
            for space in order:
                p.report("gw", space, users[space], t)
                p.tick()  # a tick between the records of one report
        elif kind == "presence paused":
            t += value  # nothing written meanwhile; the queued reports are written at resume
            for _ in range(3):
                for space in order:
                    p.report("gw", space, users[space], t)
                    p.tick()
        else:
            for _ in range(value):
                p.tick()
    assert p.timed_out == []


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.05, TIMEOUT / 3),
    st.integers(1, 4),
    st.floats(0.0, TIMEOUT),
)
def test_a_user_whose_heartbeats_stop_goes_within_the_timeout_and_a_report_interval(interval, gone, offset):
    """While the gateway goes on reporting the others, the silent user is timed out at the first
    report past their deadline, and nobody else is."""
    p = Partition()
    stay = [f"s{i}" for i in range(6)]
    leave = [f"g{i}" for i in range(gone)]
    t = 0.0
    while t < offset:
        p.report("gw", "space", stay + leave, t)
        t += interval
    p.report("gw", "space", stay + leave, t)
    last = t
    while not p.timed_out:
        t += interval
        p.report("gw", "space", stay, t)
        p.tick()
        assert t <= last + TIMEOUT + interval + 1e-9, "not timed out in time"
    if gone < RULES.brake_min_users:
        assert sorted(u for _, u, _ in p.timed_out) == leave
        assert t > last + TIMEOUT

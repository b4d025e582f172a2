"""When presence may conclude that a user left: on evidence about that user, never from its own silence.

    observe(evidence, gateway, at, rules)        a gateway's record on the partition, written at `at`
    overdue(state, evidence, rules)  -> users    a Space's users whose absence the evidence shows
    judge(spaces, evidence, rules)   -> Judgement    the overdue users of a partition, through the brake
    lagging(evidence, tick_at, wall_now, rules)  -> why time-outs must wait, or None

The evidence is the heartbeat topic's own records, one partition at a time: every
record a gateway causes (a heartbeat batch for a Space, a pulse, its loss) carries
the time presence wrote it. Per partition, `Evidence` keeps the watermark (the
latest such time), each gateway's latest time there, and `since`: from when the
partition's records have been continuous. `since` starts at the first record seen
(after a start or a new assignment) and again after a gap longer than
`gap_seconds`: while presence or the broker was stopped nobody could report, and
that time is counted against nobody.

A user's deadline is max(last heartbeat, since) + timeout. They are overdue once
the watermark is past it and either

- their gateway has reported on this partition after the deadline without them
  (any Space of the partition, or a pulse), or
- their gateway has been silent here for longer than the timeout while other
  gateways moved the watermark on (a gateway that died without a word).

Clock ticks only ask the question; their time is never evidence, so a tick
written when presence resumes cannot make everyone look late. And when presence
is behind its input, or its input is silent, it concludes nothing (`lagging`).

The brake (`judge`): if one evaluation would time out more than `brake_share` of
a Space's present users (at least `brake_min_users` of them), or more than
`brake_max_users` on the partition, they are held for `brake_hold_seconds` of
evidence time. Those still overdue then go, marked `mass_time_out`; those who
beat meanwhile stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import Message

from podium.presence.v1 import presence_events_pb2 as ev
from services.presence.domain.space_presence import PresenceRules, time_out


@dataclass
class Evidence:
    """What one partition's gateway records say, as far as this process has read them. In memory
    only: after a start or a new assignment it begins again at the first record read."""

    watermark: float | None = None
    since: float | None = None
    gateways: dict[str, float] = field(default_factory=dict)  # gateway -> its latest record here


def observe(evidence: Evidence, gateway: str, at: float, rules: PresenceRules) -> None:
    """A record from `gateway` on this partition, written at `at`."""
    mark = evidence.watermark
    if mark is None or at - mark > rules.gap_seconds:
        evidence.since = at  # nothing read before, or nobody could report for a while
    if mark is None or at > mark:
        evidence.watermark = at
    if at > evidence.gateways.get(gateway, float("-inf")):
        evidence.gateways[gateway] = at


def forget_gateway(evidence: Evidence, gateway: str) -> None:
    """The gateway said it is gone (its users were dropped at once)."""
    evidence.gateways.pop(gateway, None)


def overdue(state: dict, evidence: Evidence, rules: PresenceRules) -> list[str]:
    """The Space's present users whose absence the partition's evidence shows."""
    mark, since = evidence.watermark, evidence.since
    if mark is None or since is None:
        return []
    cutoff = mark - rules.timeout_seconds  # a deadline before this is past
    if since >= cutoff:
        return []  # not even the earliest possible deadline is past
    late = [(user, entry[0], entry[2]) for user, entry in state["present"].items() if entry[2] < cutoff]
    due = []
    heard_of = evidence.gateways
    for user, gateway, last in late:
        deadline = max(last, since) + rules.timeout_seconds
        heard = max(heard_of.get(gateway, since), since)
        if heard > deadline or heard < cutoff:  # reported without them since, or silent for a timeout
            due.append(user)
    return due


def _forget_dead_gateways(evidence: Evidence, cutoff: float) -> None:
    # A gateway silent since before `cutoff` is dead, and so is one not heard of at all (it counts
    # from `since`, which is older still, or the gateway would have been heard of since): forgetting
    # it changes no verdict, and keeps the map to the gateways alive.
    for gateway in [g for g, at in evidence.gateways.items() if at < cutoff]:
        del evidence.gateways[gateway]


@dataclass
class Judgement:
    """What one evaluation of a partition decided: events per Space, and who the brake holds."""

    events: dict[str, list[Message]] = field(default_factory=dict)
    held: dict[str, list[str]] = field(default_factory=dict)  # newly held, per Space (for the log)
    mass: int = 0  # time-outs released from the brake, marked mass_time_out
    changed: set[str] = field(default_factory=set)  # Spaces whose value changed (to write back)

    @property
    def timed_out(self) -> int:
        return sum(len(events) for events in self.events.values())


def judge(spaces: dict[str, dict], evidence: Evidence, rules: PresenceRules) -> Judgement:
    """Times out the overdue users of a partition's Spaces, through the brake.

    Mutates the Space values it changes (their present users, and `held`: user -> the evidence
    time the brake took them) and names them in the result's `events`, which the caller publishes
    and writes back.
    """
    judgement = Judgement()
    at = evidence.watermark
    if at is None:
        return judgement
    due = {}
    for space_id, state in spaces.items():
        users = overdue(state, evidence, rules)
        if users or state.get("held"):
            due[space_id] = users
    _forget_dead_gateways(evidence, at - rules.timeout_seconds)
    everywhere = sum(len(users) for users in due.values()) > rules.brake_max_users
    for space_id, users in due.items():
        state = spaces[space_id]
        held = state.setdefault("held", {})
        released = [u for u in held if u not in users]
        for user in released:
            del held[user]  # beat again, or left: not a time-out any more
        mass = everywhere or (
            len(users) >= rules.brake_min_users and len(users) > rules.brake_share * len(state["present"])
        )
        events = []
        for user in users:
            if user in held:
                if at - held[user] >= rules.brake_hold_seconds:
                    del held[user]
                    events.append(time_out(state, user, at, ev.TIMEOUT_CAUSE_HEARTBEATS_MISSED, mass=True))
                    judgement.mass += 1
            elif mass:
                held[user] = at
                judgement.held.setdefault(space_id, []).append(user)
            else:
                events.append(time_out(state, user, at, ev.TIMEOUT_CAUSE_HEARTBEATS_MISSED))
        if not held:
            del state["held"]
        if events:
            judgement.events[space_id] = events
        if events or released or space_id in judgement.held:
            judgement.changed.add(space_id)
    return judgement


def lagging(
    evidence: Evidence, tick_at: float, wall_now: float, judging: bool, rules: PresenceRules
) -> str | None:
    """Why presence may not conclude anything on this partition now (None: it may).

    `tick_at` is when the tick being read was written: reading it `max_lag_seconds` or more after
    that, presence is behind its input. A partition whose latest gateway record is that old has
    silent input: nobody is reporting, or their records are held up. `judging`: some Space of the
    partition has users present (with nobody to judge, silence is no fault).
    """
    behind = wall_now - tick_at
    if behind > rules.max_lag_seconds:
        return f"behind its input by {behind:.1f} s"
    if not judging:
        return None
    if evidence.watermark is None:
        return "no heartbeats read yet"
    silent = wall_now - evidence.watermark
    if silent > rules.max_lag_seconds:
        return f"no heartbeats for {silent:.1f} s"
    return None

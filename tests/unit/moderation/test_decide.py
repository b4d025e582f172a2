"""Moderation's rules: given events, when a command, then events or a refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.domain.decider import Context, fold
from libs.domain.errors import DomainError, FailedPrecondition, NotFound, PermissionDenied
from podium.moderation.v1 import moderation_events_pb2 as ev
from podium.moderation.v1 import moderation_types_pb2 as mt
from podium.room.v1 import room_types_pb2 as rt
from services.moderation.domain import commands as c
from services.moderation.domain.decide import decide_blocks, decide_space
from services.moderation.domain.evolve import evolve_blocks, evolve_space
from services.moderation.domain.limits import ModerationLimits
from services.moderation.domain.state import BLOCKS_INITIAL, SPACE_INITIAL

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
S = "space-1"
HOST, CO, SPK, LIS = rt.ROLE_HOST, rt.ROLE_CO_HOST, rt.ROLE_SPEAKER, rt.ROLE_LISTENER
NONE = rt.ROLE_UNSPECIFIED
SPAM = mt.REPORT_REASON_SPAM


def state(*events, at=NOW):
    return fold(evolve_space, SPACE_INITIAL, [(e, at) for e in events])


def when(events, command, actor="host", now=NOW, claims=(), limits=ModerationLimits()):
    return decide_space(command, state(*events), Context(actor, now, frozenset(claims)), limits)


def roles(actor, target=NONE):
    return c.Roles(actor=actor, target=target, host_user_id="host")


def test_the_host_hard_mutes_a_speaker_who_cannot_lift_it():
    (muted,) = when([], c.MuteParticipant(S, "spk", roles(HOST, SPK)))
    assert muted.kind == mt.MUTE_KIND_HOST
    with pytest.raises(FailedPrecondition, match="only they can lift it"):
        when([muted], c.UnmuteParticipant(S, "spk", roles(SPK)), actor="spk")
    (lifted,) = when([muted], c.UnmuteParticipant(S, "spk", roles(CO, SPK)), actor="co")
    assert lifted.lifted == mt.MUTE_KIND_HOST


def test_a_speaker_mutes_and_unmutes_themselves():
    (muted,) = when([], c.MuteParticipant(S, "spk", roles(SPK)), actor="spk")
    assert muted.kind == mt.MUTE_KIND_SELF
    assert when([muted], c.MuteParticipant(S, "spk", roles(SPK)), actor="spk") == []
    assert len(when([muted], c.UnmuteParticipant(S, "spk", roles(SPK)), actor="spk")) == 1
    (hard,) = when([muted], c.MuteParticipant(S, "spk", roles(HOST, SPK)))
    assert hard.kind == mt.MUTE_KIND_HOST


def test_listeners_cannot_be_muted_and_cannot_mute():
    with pytest.raises(FailedPrecondition):
        when([], c.MuteParticipant(S, "lis", roles(HOST, LIS)))
    with pytest.raises(PermissionDenied):
        when([], c.MuteParticipant(S, "spk", roles(LIS, SPK)), actor="lis")
    with pytest.raises(PermissionDenied):
        when([], c.MuteParticipant(S, "host", roles(CO, HOST)), actor="co")


def test_removal_bars_the_user_and_never_touches_the_host():
    (removed,) = when([], c.RemoveParticipant(S, "troll", "spam", roles(CO, LIS)), actor="co")
    assert state(removed).removed == {"troll"}
    assert when([removed], c.RemoveParticipant(S, "troll", "again", roles(HOST, NONE))) == []
    with pytest.raises(PermissionDenied, match="host cannot be removed"):
        when([], c.RemoveParticipant(S, "host", "", roles(CO, HOST)), actor="co")
    with pytest.raises(PermissionDenied):
        when([], c.RemoveParticipant(S, "troll", "", roles(SPK, LIS)), actor="spk")


def _reported(reporter, at=NOW, target="spk", report_id=None):
    event = ev.ParticipantReported(
        report_id=report_id or f"r-{reporter}",
        space_id=S,
        target_user_id=target,
        reason=SPAM,
        reporter_user_id=reporter,
    )
    return event, at


def _auto(history, report_ids, now=NOW, target_role=SPK, claims=("system",)):
    """AutoMute of "spk" as the report-window stream issues it, against `history` of (event, at)."""
    command = c.AutoMute(S, "spk", tuple(report_ids), roles(NONE, target_role))
    current = fold(evolve_space, SPACE_INITIAL, history)
    return decide_space(command, current, Context("system:moderation", now, frozenset(claims)))


def test_a_report_is_recorded_and_mutes_nobody_by_itself():
    command = c.ReportParticipant(S, "r-a", "spk", SPAM, "loud", roles(LIS, SPK))
    (reported,) = when([], command, actor="a")
    assert isinstance(reported, ev.ParticipantReported) and reported.reporter_user_id == "a"


def test_three_distinct_reporters_within_the_window_auto_mute_the_speaker_and_say_why():
    history = [
        _reported("a"),
        _reported("b", NOW + timedelta(seconds=30)),
        _reported("c", NOW + timedelta(seconds=90)),
    ]
    (muted,) = _auto(history, ["r-a", "r-b", "r-c"], now=NOW + timedelta(seconds=91))
    assert muted.kind == mt.MUTE_KIND_AUTO and list(muted.report_ids) == ["r-a", "r-b", "r-c"]
    assert (muted.distinct_reporters, muted.window_seconds) == (3, 120)


def test_two_reporters_are_not_enough_even_with_three_reports():
    history = [_reported("a"), _reported("b"), _reported("a", report_id="r-a2")]
    assert _auto(history, ["r-a", "r-b", "r-a2"]) == []


def test_reports_further_apart_than_the_window_do_not_count_together():
    late = NOW + timedelta(minutes=3)
    history = [_reported("a"), _reported("b"), _reported("c", late)]
    assert _auto(history, ["r-a", "r-b", "r-c"], now=late) == []


def test_a_stale_trigger_from_a_replay_of_old_reports_mutes_nobody():
    history = [_reported(u) for u in "abc"]
    assert _auto(history, ["r-a", "r-b", "r-c"], now=NOW + timedelta(minutes=30)) == []


def test_listeners_and_already_hard_muted_speakers_are_not_auto_muted():
    history = [_reported(u) for u in "abc"]
    assert _auto(history, ["r-a", "r-b", "r-c"], target_role=LIS) == []
    host_mute = (ev.ParticipantMuted(space_id=S, user_id="spk", kind=mt.MUTE_KIND_HOST), NOW)
    assert _auto([*history, host_mute], ["r-a", "r-b", "r-c"]) == []


def test_the_same_reports_never_mute_twice_but_fresh_ones_do():
    history = [_reported(u) for u in "abc"]
    (muted,) = _auto(history, ["r-a", "r-b", "r-c"])
    history.append((muted, NOW))
    assert _auto(history, ["r-a", "r-b", "r-c"]) == []  # a duplicate delivery
    history.append((ev.ParticipantUnmuted(space_id=S, user_id="spk", lifted=mt.MUTE_KIND_AUTO), NOW))
    assert _auto(history, ["r-a", "r-b", "r-c"]) == []  # the host reviewed and lifted it
    later = NOW + timedelta(minutes=1)
    history += [_reported(u, later, report_id=f"r2-{u}") for u in "def"]
    (again,) = _auto(history, ["r2-d", "r2-e", "r2-f"], now=later)
    assert list(again.report_ids) == ["r2-d", "r2-e", "r2-f"]


def test_resolved_reports_do_not_count():
    history = [_reported(u) for u in "abc"]
    resolved = ev.ReportResolved(report_id="r-c", space_id=S, resolution=mt.RESOLUTION_NO_ACTION)
    assert _auto([*history, (resolved, NOW)], ["r-a", "r-b", "r-c"]) == []


def test_only_the_service_issues_automatic_mutes():
    with pytest.raises(PermissionDenied):
        _auto([_reported(u) for u in "abc"], ["r-a", "r-b", "r-c"], claims=())


def test_only_participants_report_and_not_themselves():
    with pytest.raises(PermissionDenied):
        when([], c.ReportSpace(S, "r1", SPAM, "", roles(NONE)), actor="outsider")
    with pytest.raises(FailedPrecondition):
        when([], c.ReportParticipant(S, "r1", "me", SPAM, "", roles(LIS, LIS)), actor="me")
    with pytest.raises(DomainError):
        when([], c.ReportSpace(S, "r1", mt.REPORT_REASON_UNSPECIFIED, "", roles(LIS)), actor="lis")


def test_trust_and_safety_resolves_reports():
    (reported,) = when([], c.ReportSpace(S, "r1", SPAM, "ads", roles(LIS)), actor="lis")
    resolve = c.ResolveReport(S, "r1", mt.RESOLUTION_ACTION_TAKEN, "warned")
    with pytest.raises(PermissionDenied):
        when([reported], resolve, actor="host")
    (resolved,) = when([reported], resolve, actor="ts", claims=["trust-and-safety"])
    assert resolved.resolver_user_id == "ts"
    assert when([reported, resolved], resolve, actor="ts", claims=["trust-and-safety"]) == []
    with pytest.raises(NotFound):
        when([], resolve, actor="ts", claims=["trust-and-safety"])


def test_blocks_are_per_host_and_idempotent():
    ctx = Context("host", NOW)
    (blocked,) = decide_blocks(c.BlockUser("troll"), BLOCKS_INITIAL, ctx)
    after = evolve_blocks(BLOCKS_INITIAL, blocked, NOW)
    assert after.blocked == {"troll"} and decide_blocks(c.BlockUser("troll"), after, ctx) == []
    assert len(decide_blocks(c.UnblockUser("troll"), after, ctx)) == 1
    with pytest.raises(FailedPrecondition):
        decide_blocks(c.BlockUser("host"), BLOCKS_INITIAL, ctx)

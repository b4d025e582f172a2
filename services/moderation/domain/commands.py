"""Moderation commands. Facts about roles come from the room service's events,
through the application, so decide stays pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Roles:
    """What the room service's events say about the actor and the target in this Space."""

    actor: int  # podium.room.v1.Role; ROLE_UNSPECIFIED when not in the Space
    target: int = 0
    host_user_id: str = ""


@dataclass(frozen=True)
class MuteParticipant:
    space_id: str
    user_id: str
    roles: Roles


@dataclass(frozen=True)
class UnmuteParticipant:
    space_id: str
    user_id: str
    roles: Roles


@dataclass(frozen=True)
class RemoveParticipant:
    space_id: str
    user_id: str
    reason: str
    roles: Roles


@dataclass(frozen=True)
class ReportSpace:
    space_id: str
    report_id: str
    reason: int
    text: str
    roles: Roles


@dataclass(frozen=True)
class ReportParticipant:
    space_id: str
    report_id: str
    user_id: str
    reason: int
    text: str
    roles: Roles


@dataclass(frozen=True)
class ResolveReport:
    space_id: str
    report_id: str
    resolution: int
    note: str


@dataclass(frozen=True)
class AutoMute:
    """Issued by the report-window stream when enough distinct users reported one speaker."""

    space_id: str
    user_id: str
    report_ids: tuple[str, ...]
    roles: Roles


@dataclass(frozen=True)
class BlockUser:
    user_id: str


@dataclass(frozen=True)
class UnblockUser:
    user_id: str

"""Every reason a Podium call is refused for: its status code, what it means, what a client does.

A refusal (`libs.domain.errors`) carries one of these, and the gRPC kit sends its name as the
`google.rpc.ErrorInfo` reason (domain `podium.dev`). A client keys on the reason, never on the
message, which is for people. docs/errors.md is generated from this registry
(`python -m libs.contracts.errors`), so a reason cannot be raised without being documented: the
error types accept only members of `Reason`, and tests/unit/libs/test_error_reasons.py holds every
raising site to that.

Two reasons are sent with two codes, as they were before this registry: `NOT_A_PARTICIPANT` and
`NOT_A_SPEAKER` are PERMISSION_DENIED when the caller lacks the place a call needs, and
FAILED_PRECONDITION when the user a call is about (the caller, for calls on their own place) is not
in that place. Their members here are apart (`USER_NOT_A_PARTICIPANT`, `USER_NOT_A_SPEAKER`) and
send the same ErrorInfo reason, so clients see no change and the catalogue lists both meanings.
"""

from __future__ import annotations

import enum


class Code:
    """The canonical status codes (google.rpc.Code names) the domain's errors use."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    ABORTED = "ABORTED"
    UNAVAILABLE = "UNAVAILABLE"


CODES = tuple(v for k, v in vars(Code).items() if not k.startswith("_"))


@enum.unique
class Reason(enum.Enum):
    """One documented refusal. `reason` is the ErrorInfo reason clients see (the member's name,
    except for the two reasons sent with two codes); `code` its canonical status code."""

    def __init__(self, code: str, meaning: str, action: str, sent_as: str = ""):
        if code not in CODES:
            raise ValueError(f"{self.name}: {code!r} is not one of {CODES}")
        self.code = code
        self.meaning = meaning
        self.action = action
        self.reason = sent_as or self.name

    def __str__(self) -> str:
        return self.reason

    # Requests

    INVALID_ARGUMENT = (
        Code.INVALID_ARGUMENT,
        "A field is missing, malformed or out of range (a page_token from another query, a title "
        "too long, an unknown enum value...). `google.rpc.BadRequest` names each field and what is "
        "wrong with it.",
        "Fix the request; do not retry it unchanged.",
    )
    INVITE_INVALID = (
        Code.INVALID_ARGUMENT,
        "The `invite_token` is not an invite link Podium issued (malformed, or signed with another key).",
        "Ask the host for a new link (CreateInviteLink); join without a token if the Space is open "
        "to anyone.",
    )
    REQUEST_ID_REUSED = (
        Code.INVALID_ARGUMENT,
        "This `request_id` was already used, by the same caller and method, for a different request.",
        "Use a new request_id for every new request; reuse one only to retry the very same request.",
    )

    # Tokens and callers

    TOKEN_MISSING = (
        Code.UNAUTHENTICATED,
        "The call carries no `authorization` metadata.",
        "Send `authorization: Bearer <jwt>`.",
    )
    TOKEN_MALFORMED = (
        Code.UNAUTHENTICATED,
        "The `authorization` metadata is not `Bearer <jwt>`.",
        "Send `authorization: Bearer <jwt>`.",
    )
    TOKEN_INVALID = (
        Code.UNAUTHENTICATED,
        "The token failed verification: a bad signature, an unknown `kid`, the wrong `aud`, "
        "expired, or missing a claim. The message says which.",
        "Get a fresh token, then retry.",
    )
    USER_TOKEN_REQUIRED = (
        Code.PERMISSION_DENIED,
        "A gateway token was sent to a call people make: a gateway acts for a user with that "
        "user's own token.",
        "Call with the user's token.",
    )
    GATEWAY_TOKEN_REQUIRED = (
        Code.PERMISSION_DENIED,
        "A user token was sent to a gateway's own call (ReportPresence, GatewayDisconnected).",
        "Call with the gateway's token (role `gateway`).",
    )
    NOT_YOUR_GATEWAY = (
        Code.PERMISSION_DENIED,
        "The request's `gateway_id` is not the gateway the token names: a gateway reports only for itself.",
        "Send the gateway's own id, or that gateway's token.",
    )
    NOT_YOUR_STREAM = (
        Code.PERMISSION_DENIED,
        "The frame's `speaker_id` is not the caller: a gateway publishes each speaker with that "
        "speaker's token.",
        "Publish each speaker's audio with that speaker's token.",
    )
    NOT_TRUST_AND_SAFETY = (
        Code.PERMISSION_DENIED,
        "The call is for trust and safety: the token lacks the `trust-and-safety` role.",
        "Do not retry; only trust-and-safety staff can make this call.",
    )
    SYSTEM_ONLY = (
        Code.PERMISSION_DENIED,
        "A command only the room service itself issues (ending an abandoned Space, timing out a "
        "participant, reminding subscribers, expiring a scheduled Space).",
        "None: clients cannot issue it.",
    )
    NOT_SYSTEM = (
        Code.PERMISSION_DENIED,
        "A command only a Podium service issues (automatic mutes, finalizing a replay).",
        "None: clients cannot issue it.",
    )

    # Spaces

    SPACE_NOT_FOUND = (
        Code.NOT_FOUND,
        "No Space has this id. Right after CreateSpace, a service other than the room may not "
        "have seen the Space yet.",
        "Check the id. If the Space was just created, retry after a short wait.",
    )
    SPACE_EXISTS = (
        Code.ALREADY_EXISTS,
        "A Space with this id already exists.",
        "None: the room picks Space ids; this is a bug if a client sees it.",
    )
    SPACE_NOT_LIVE = (
        Code.FAILED_PRECONDITION,
        "The Space has not started yet, and the call needs a live Space (joining, roles, "
        "publishing audio; ending it).",
        "Wait for the Space to start (WatchSpace streams it), or cancel it instead of ending it.",
    )
    SPACE_ENDED = (
        Code.FAILED_PRECONDITION,
        "The Space has ended or was cancelled; nothing about it can change any more. Also a "
        "ReportPresence entry's reason for such a Space.",
        "Stop: leave the Space's screen, stop reporting and streaming it.",
    )
    SPACE_NOT_SCHEDULED = (
        Code.FAILED_PRECONDITION,
        "Only a scheduled Space that has not started can be subscribed to (this one has no "
        "scheduled start, or is live, ended or cancelled).",
        "Do not offer reminders for it; a live Space is joined instead.",
    )
    REMINDER_NOT_DUE = (
        Code.FAILED_PRECONDITION,
        "The room service asked to remind a scheduled Space's subscribers before the reminder "
        "was due (only the service itself sends reminders).",
        "None: clients cannot issue it.",
    )
    SPACE_NOT_EXPIRED = (
        Code.FAILED_PRECONDITION,
        "The room service asked to end a scheduled Space as expired while it could still start "
        "(only the service itself expires Spaces).",
        "None: clients cannot issue it.",
    )
    HOSTS_GONE_IN_MASS_TIME_OUT = (
        Code.FAILED_PRECONDITION,
        "The room service asked to end a Space as abandoned, but its host and co-hosts left in a "
        "mass time-out, which is no evidence that they are gone: it waits the longer grace "
        "(PODIUM_ROOM_ABANDONED_GRACE_WITHOUT_EVIDENCE_SECONDS). `not_before` in the ErrorInfo "
        "metadata says until when.",
        "None: clients cannot issue it.",
    )
    SPACE_STARTED = (
        Code.FAILED_PRECONDITION,
        "The Space has started, so it cannot be cancelled.",
        "End it (EndSpace) instead.",
    )
    SPACE_ATTENDED = (
        Code.FAILED_PRECONDITION,
        "The Space is not abandoned: a host or co-host is present, or was within the grace period.",
        "None: the room ends abandoned Spaces itself.",
    )
    NOT_HOST = (
        Code.PERMISSION_DENIED,
        "Only the Space's host may do this (update, start, end, cancel, manage co-hosts, delete the replay).",
        "Do not retry; ask the host.",
    )
    NOT_HOST_OR_CO_HOST = (
        Code.PERMISSION_DENIED,
        "Only the host and co-hosts may do this (invite, manage speakers and requests to speak, "
        "mute, remove, read the moderation log).",
        "Do not retry; ask the host or a co-host.",
    )

    # Membership

    NOT_A_PARTICIPANT = (
        Code.PERMISSION_DENIED,
        "The caller is not in the Space, and the call is for its participants: publishing or "
        "hearing its audio, reporting. A Subscribe stream ends with it when the listener leaves, "
        "times out or is removed.",
        "Join the Space (JoinSpace), then retry; a removed user cannot.",
    )
    USER_NOT_A_PARTICIPANT = (
        Code.FAILED_PRECONDITION,
        "The user the call is about is not in the Space (any more): the user named, or the caller "
        "for calls on their own place (RequestToSpeak).",
        "Refresh the participant list (ListParticipants, WatchSpace); join first if it is you.",
        "NOT_A_PARTICIPANT",
    )
    PARTICIPANT_NOT_FOUND = (
        Code.NOT_FOUND,
        "The user is not in the Space now: never joined, left, timed out or was removed, or the "
        "Space is over (GetParticipant).",
        "Refresh the participant list (ListParticipants, WatchSpace).",
    )
    NOT_INVITED = (
        Code.PERMISSION_DENIED,
        "The Space is invite-only, and the caller has neither an invitation nor an invite link.",
        "Ask the host or a co-host for an invitation or a link, and join with its `invite_token`.",
    )
    INVITE_EXPIRED = (
        Code.PERMISSION_DENIED,
        "The invite link has expired.",
        "Ask the host or a co-host for a new link.",
    )
    INVITE_OTHER_SPACE = (
        Code.PERMISSION_DENIED,
        "The invite link is for another Space.",
        "Join with the link of this Space, or join the Space the link is for.",
    )
    REMOVED_FROM_SPACE = (
        Code.PERMISSION_DENIED,
        "The caller was removed from this Space and may not come back.",
        "Do not retry.",
    )
    BLOCKED = (
        Code.PERMISSION_DENIED,
        "The Space's host or a co-host has blocked the caller.",
        "Do not retry.",
    )
    CANNOT_REMOVE_HOST = (
        Code.PERMISSION_DENIED,
        "The host cannot be removed from their own Space.",
        "Do not retry.",
    )
    CANNOT_REMOVE_SELF = (
        Code.FAILED_PRECONDITION,
        "The caller tried to remove themselves; removal bars a user from coming back.",
        "Leave with LeaveSpace.",
    )

    # Roles and requests to speak

    ALREADY_HOST = (
        Code.FAILED_PRECONDITION,
        "The host cannot also be a co-host.",
        "None: the host already has every right a co-host has.",
    )
    NOT_A_CO_HOST = (
        Code.FAILED_PRECONDITION,
        "The user named is not a co-host.",
        "Refresh the Space (GetSpace); there is nothing to remove.",
    )
    CO_HOST_LIMIT_REACHED = (
        Code.RESOURCE_EXHAUSTED,
        "The Space already has the most co-hosts it may (`PODIUM_ROOM_MAX_CO_HOSTS`, 2 by default).",
        "Remove a co-host first (RemoveCoHost).",
    )
    SPEAKER_LIMIT_REACHED = (
        Code.RESOURCE_EXHAUSTED,
        "The Space already has the most speakers it may (`PODIUM_ROOM_MAX_SPEAKERS`, 10 by default).",
        "Revoke a speaker first (RevokeSpeaker).",
    )
    ALREADY_A_VOICE = (
        Code.FAILED_PRECONDITION,
        "The user already speaks: hosts and co-hosts cannot be invited to speak, and a speaker "
        "cannot ask to.",
        "None: they can already speak.",
    )
    NOT_A_SPEAKER = (
        Code.PERMISSION_DENIED,
        "Only the host, co-hosts and speakers may publish audio, and the caller is none of them "
        "(or no longer: a Publish stream ends with it when the speaker is revoked or leaves).",
        "Ask to speak (RequestToSpeak) and publish once promoted.",
    )
    USER_NOT_A_SPEAKER = (
        Code.FAILED_PRECONDITION,
        "The user named is not a speaker (RevokeSpeaker), or does not speak in the Space (MuteParticipant).",
        "Refresh the Space. Right after promoting someone, pass the `room_version` you were given "
        "so moderation waits for it.",
        "NOT_A_SPEAKER",
    )
    IS_HOST = (
        Code.FAILED_PRECONDITION,
        "The host cannot step down.",
        "End the Space (EndSpace) instead.",
    )
    NO_SPEAK_REQUEST = (
        Code.FAILED_PRECONDITION,
        "The user has no pending request to speak (it was withdrawn, answered, or never made).",
        "Refresh the queue (ListSpeakRequests).",
    )
    REQUEST_QUEUE_FULL = (
        Code.RESOURCE_EXHAUSTED,
        "The Space's queue of requests to speak is full.",
        "Retry later, once the host has answered some.",
    )

    # Moderation

    MUTED = (
        Code.PERMISSION_DENIED,
        "The speaker is muted by a host or co-host, or automatically pending review, so their "
        "audio is refused.",
        "Wait to be unmuted; a host or co-host can lift it.",
    )
    HARD_MUTED = (
        Code.FAILED_PRECONDITION,
        "A host or co-host (or an automatic mute pending review) muted the caller; only they can lift it.",
        "Ask a host or co-host to unmute you.",
    )
    CANNOT_MUTE_HOST = (
        Code.PERMISSION_DENIED,
        "Nobody can mute the host.",
        "Do not retry.",
    )
    SELF_REPORT = (
        Code.FAILED_PRECONDITION,
        "The caller tried to report themselves.",
        "Do not retry.",
    )
    SELF_BLOCK = (
        Code.FAILED_PRECONDITION,
        "The caller tried to block themselves.",
        "Do not retry.",
    )
    REPORT_NOT_FOUND = (
        Code.NOT_FOUND,
        "No report with this id exists in this Space.",
        "Check the report and Space ids (ListReports).",
    )
    ALREADY_RESOLVED = (
        Code.FAILED_PRECONDITION,
        "The report was already resolved, with another resolution. (The same resolution again "
        "succeeds and changes nothing.)",
        "Refresh the report (ListReports); do not retry.",
    )
    VIEW_BEHIND = (
        Code.UNAVAILABLE,
        "Moderation or replay has not yet seen the room version the request names (`room_version`), within its wait.",
        "Retry after the `google.rpc.RetryInfo` delay (a fraction of a second), with the same request_id.",
    )

    # Replays

    REPLAY_NOT_VISIBLE = (
        Code.PERMISSION_DENIED,
        "The Space was invite-only; its replay is only for its host, co-hosts, the people "
        "admitted to it and trust and safety.",
        "Do not retry.",
    )
    NOT_RECORDED = (
        Code.FAILED_PRECONDITION,
        "The Space was not recorded (its host had recording off), so it has no replay.",
        "None: there is no replay to get.",
    )
    CANCELLED = (
        Code.FAILED_PRECONDITION,
        "The Space was cancelled before it started, so it has no replay.",
        "None: there is no replay to get.",
    )
    SPACE_NOT_ENDED = (
        Code.FAILED_PRECONDITION,
        "The Space has not ended; its replay is made when it ends.",
        "Retry after the Space ends (WatchSpace streams the end).",
    )
    REPLAY_FINALIZING = (
        Code.FAILED_PRECONDITION,
        "The replay is still being assembled.",
        "Poll GetReplay until its state is READY (it reports progress), then retry.",
    )
    NO_AUDIO = (
        Code.FAILED_PRECONDITION,
        "The replay could not be made: the recording holds no audio (nobody spoke).",
        "None: there is no replay to get.",
    )
    REPLAY_NOT_FOUND = (
        Code.NOT_FOUND,
        "The Space has no finalized replay to listen to.",
        "Poll GetReplay until its state is READY.",
    )
    REPLAY_EXPIRED = (
        Code.NOT_FOUND,
        "The replay was kept for its retention period, then deleted.",
        "None: it is gone.",
    )
    REPLAY_DELETED = (
        Code.NOT_FOUND,
        "The Space's host deleted the replay.",
        "None: it is gone.",
    )
    NOT_EXPIRED = (
        Code.FAILED_PRECONDITION,
        "The replay's retention period has not run out, so it is not deleted as expired.",
        "None: replay deletes expired replays itself.",
    )
    NOT_CREATED_YET = (
        Code.FAILED_PRECONDITION,
        "GetSpaceStateAt was asked about a moment before the Space was created.",
        "Ask about a moment after the Space's `created_at`.",
    )

    # Webhooks

    WEBHOOK_NOT_FOUND = (
        Code.NOT_FOUND,
        "The caller has no webhook with that id (someone else's webhook is reported the same way).",
        "Check the id against ListWebhooks.",
    )
    WEBHOOK_LIMIT_REACHED = (
        Code.RESOURCE_EXHAUSTED,
        "The owner already has as many webhooks as a deployment allows (PODIUM_WEBHOOKS_MAX_PER_OWNER).",
        "Delete a webhook you no longer need, or subscribe one endpoint to more event types.",
    )

    # Load and availability

    RATE_LIMITED = (
        Code.RESOURCE_EXHAUSTED,
        "The caller made too many calls of one kind (joins, reports, requests to speak, invites) "
        "in a minute; `ErrorInfo.metadata` names the action and its limit.",
        "Retry after the `google.rpc.RetryInfo` delay.",
    )
    CONCURRENCY_CONFLICT = (
        Code.ABORTED,
        "The Space kept changing under the call through every attempt to apply it.",
        "Retry with the same request_id (so it cannot apply twice), with backoff.",
    )
    ON_LISTENER_SHARDS = (
        Code.ABORTED,
        "The Space's listeners moved to listener shards (docs/decisions/0012) while the call was "
        "decided on the Space's own stream; the call changed nothing.",
        "Retry with the same request_id; the retry is decided where the listeners are.",
    )
    SHUTTING_DOWN = (
        Code.ABORTED,
        "The replica was shutting down before it could apply the call; the call changed nothing.",
        "Retry with the same request_id; another replica answers.",
    )
    STORE_UNAVAILABLE = (
        Code.UNAVAILABLE,
        "The event store (PostgreSQL) is unreachable, or the connection was lost during the call.",
        "Retry with backoff and the same request_id: a call that did apply is answered with its "
        "first result.",
    )
    LOG_UNAVAILABLE = (
        Code.UNAVAILABLE,
        "The event log (Kafka) did not take a write (presence's heartbeats).",
        "Retry after the `google.rpc.RetryInfo` delay.",
    )
    RELAY_SHUTTING_DOWN = (
        Code.UNAVAILABLE,
        "The media relay serving the stream is shutting down.",
        "Ask GetMediaEndpoint again, reconnect there, and resume at the live edge.",
    )

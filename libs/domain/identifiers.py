"""What every id in Podium looks like: Space, user, report and request ids alike."""

from __future__ import annotations

MAX_ID_LENGTH = 128


def id_problem(value: str) -> tuple[str, str] | None:
    """What is wrong with `value` as an id and the rule it breaks, or None if it is usable.

    Ids go into keys, SQL and logs, so they are printable and bounded.
    """
    if not value:
        return "is required", "must not be empty"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "contains control characters", "printable characters only"
    if len(value) > MAX_ID_LENGTH:
        return "is too long", f"at most {MAX_ID_LENGTH} characters"
    return None

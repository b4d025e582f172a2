"""Checks on request fields that every API makes the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from libs.domain.errors import FieldViolation, InvalidArgument
from libs.domain.identifiers import id_problem


def require_id(value: str, field: str) -> str:
    """`value` stripped, or INVALID_ARGUMENT naming `field` when it is not a usable id."""
    value = value.strip()
    problem = id_problem(value)
    if problem is not None:
        wrong, rule = problem
        raise InvalidArgument(f"{field} {wrong}", [FieldViolation(field, rule)])
    return value


def optional_id(value: str, field: str) -> str:
    """`value` stripped, "" when blank (a filter left out), else as `require_id`."""
    return require_id(value, field) if value.strip() else ""


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
LONGEST = timedelta(days=3650)


def timestamp_field(value: Timestamp, field: str) -> datetime:
    """A request Timestamp as an aware datetime, or INVALID_ARGUMENT when it is not a real moment
    between 2000 and 2200 (out-of-range seconds, nanos outside 0..999,999,999)."""
    try:
        if not 0 <= value.nanos < 1_000_000_000:
            raise ValueError
        when = value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        when = None
    if when is None or not EARLIEST <= when < LATEST:
        raise InvalidArgument(
            f"{field} is not a valid time", [FieldViolation(field, "must be a time between 2000 and 2200")]
        )
    return when


def duration_field(value: Duration, field: str, *, minimum: timedelta = timedelta(0)) -> timedelta:
    """A request Duration as a timedelta, or INVALID_ARGUMENT when it is malformed, below
    `minimum` or longer than ten years."""
    try:
        if not -1_000_000_000 < value.nanos < 1_000_000_000 or (
            value.seconds and value.nanos and (value.seconds < 0) != (value.nanos < 0)
        ):
            raise ValueError
        span = value.ToTimedelta()
    except (ValueError, OverflowError):
        span = None
    if span is None or not minimum <= span <= LONGEST:
        raise InvalidArgument(
            f"{field} is not a valid duration",
            [FieldViolation(field, f"must be between {minimum} and {LONGEST.days} days")],
        )
    return span

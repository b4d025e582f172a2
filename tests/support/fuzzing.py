"""Hypothesis strategies for any protobuf request message, built from its descriptor.

Every field gets random and boundary values: empty, short and oversize
strings (and ids that exist, when given), integer limits, unknown enum numbers,
NaN and infinities, out-of-range timestamps and durations, empty and long
repeated fields, and nested messages down to a small depth.
"""

from __future__ import annotations

import math

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

INT32 = (0, 1, -1, 2**31 - 1, -(2**31))
INT64 = (*INT32, 2**63 - 1, -(2**63))
UINT32 = (0, 1, 2**32 - 1)
UINT64 = (0, 1, 2**64 - 1)
FD = FieldDescriptor


def _strings(known: tuple[str, ...]) -> st.SearchStrategy[str]:
    options = [
        st.just(""),
        st.text(max_size=40),
        st.text(alphabet="ab ", min_size=257, max_size=3000),  # over every length limit
        st.sampled_from([" ", "\x00", "../../etc/passwd", "' OR 1=1 --", "🎙️" * 50, "a" * 64]),
    ]
    if known:
        options.append(st.sampled_from(known))
    return st.one_of(*options)


def _scalar(field: FieldDescriptor, known: tuple[str, ...]) -> st.SearchStrategy:
    t = field.type
    if t == FD.TYPE_STRING:
        return _strings(known)
    if t == FD.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.binary(min_size=2000, max_size=5000))
    if t == FD.TYPE_BOOL:
        return st.booleans()
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return st.one_of(
            st.sampled_from([0.0, -1.0, 1.5, 2.0, math.nan, math.inf, -math.inf, 1e300]), st.floats(-10, 10)
        )
    if t == FD.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-3, 99))
    if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return st.one_of(st.sampled_from(INT32), st.integers(-100, 1000))
    if t in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return st.one_of(st.sampled_from(INT64), st.integers(-100, 10**6))
    if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return st.one_of(st.sampled_from(UINT32), st.integers(0, 1000))
    if t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return st.one_of(st.sampled_from(UINT64), st.integers(0, 10**6))
    raise TypeError(f"no strategy for field type {t} ({field.full_name})")


def _well_known(descriptor: Descriptor) -> st.SearchStrategy[dict] | None:
    if descriptor.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return st.fixed_dictionaries(
            {
                "seconds": st.one_of(
                    st.sampled_from([0, -1, 1, 315537897599, 315537897600, -62135596801, 2**62]),
                    st.integers(-(10**10), 10**10),
                ),
                "nanos": st.sampled_from([0, 1, 999_999_999, -1, 10**9]),
            }
        )
    return None


def message_values(
    descriptor: Descriptor, known: tuple[str, ...] = (), depth: int = 0
) -> st.SearchStrategy[dict]:
    """Field name -> value dicts for `descriptor` (each field present or not)."""
    well_known = _well_known(descriptor)
    if well_known is not None:
        return well_known
    fields = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            if value.message_type is not None:
                continue
            fields[field.name] = st.dictionaries(_scalar(key, known), _scalar(value, known), max_size=3)
            continue
        if field.message_type is not None:
            if depth >= 2:
                continue
            inner = message_values(field.message_type, known, depth + 1)
        else:
            inner = _scalar(field, known)
        if field.is_repeated:
            inner = st.one_of(st.lists(inner, max_size=4), st.lists(inner, min_size=60, max_size=120))
        fields[field.name] = inner
    return st.fixed_dictionaries({}, optional=fields)


def build(message_class: type[Message], values: dict) -> Message:
    message = message_class()
    _fill(message, values)
    return message


def _fill(message: Message, values: dict) -> None:
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            getattr(message, name).update(value)
        elif field.message_type is not None:
            if field.is_repeated:
                for item in value:
                    _fill(getattr(message, name).add(), item)
            else:
                _fill(getattr(message, name), value)
        elif field.is_repeated:
            getattr(message, name).extend(value)
        else:
            setattr(message, name, value)

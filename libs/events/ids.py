"""Time-ordered unique ids (UUIDv7, RFC 9562)."""

from __future__ import annotations

import os
import time
import uuid

_VARIANT = "89ab"  # the variant's two bits (10) and the next two random bits, as the group's first hex digit


def uuid7() -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, then 74 random bits."""
    return uuid.UUID(new_id())


def new_id() -> str:
    """A UUIDv7 in its canonical text form, made as text: every event's envelope takes one, and
    formatting the hex directly costs half of building a `uuid.UUID` and printing it."""
    ms = (time.time_ns() // 1_000_000) & 0xFFFF_FFFF_FFFF
    rand = os.urandom(10)
    t = ms.to_bytes(6, "big").hex()
    r = rand.hex()
    # version 7, then rand_a (12 bits); the variant 10, then 62 random bits
    return f"{t[:8]}-{t[8:]}-7{r[1:4]}-{_VARIANT[rand[2] >> 6]}{r[5:8]}-{r[8:]}"

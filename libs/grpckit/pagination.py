"""AIP-158 pagination with keyset page tokens, bound to their query.

A list is in a total order of its items' keys (a tuple that ends in something unique, such as the
user or Space id). A page token holds the key of the last item returned and a digest of the
query's filters; the next page is the items whose key comes after it. So a list that changes
while it is paged never repeats an item that kept its key, and skips only items that went away:
an offset into a live list would skip one item for each that left before it, and repeat one for
each that arrived. A token reused with different filters is rejected rather than silently
mixing two queries.

Keys hold only strings and integers (times as integer microseconds), so a token is plain JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from libs.domain.errors import FieldViolation, InvalidArgument

T = TypeVar("T")
Key = tuple[str | int, ...]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page:
    size: int
    query_digest: str
    after: Key | None = None  # the key of the last item of the page before; None on the first


def parse_page(page_size: int, page_token: str, query: object = "") -> Page:
    if page_size < 0:
        raise InvalidArgument(
            "page_size must not be negative", [FieldViolation("page_size", "must be 0 (default) or positive")]
        )
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    digest = hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]
    if not page_token:
        return Page(size, digest)
    try:
        data = json.loads(base64.urlsafe_b64decode(page_token.encode() + b"=="))
        after, token_digest = data["k"], str(data["q"])
        if not isinstance(after, list) or not all(isinstance(v, str | int) for v in after):
            raise TypeError("a key holds strings and integers")
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidArgument(
            "page_token is not a token this API issued", [FieldViolation("page_token", "malformed")]
        ) from e
    if token_digest != digest:
        raise InvalidArgument(
            "page_token belongs to a query with different filters; restart without a page_token",
            [FieldViolation("page_token", "does not match the request's filters")],
        )
    return Page(size, digest, tuple(after))


def paginate(
    items: Sequence[T], page: Page, key: Callable[[T], Key], *, descending: bool = False
) -> tuple[list[T], str]:
    """The page of `items` after the token's key, and the token for the next page ('' after the
    last page). `items` are in ascending order of `key` (descending with `descending`), and no two
    share a key."""
    keys = [key(item) for item in items]
    start = 0
    if page.after is not None:
        after = page.after
        try:
            start = next(
                (i for i, k in enumerate(keys) if (k < after if descending else k > after)), len(keys)
            )
        except TypeError as e:  # a key of another shape: not a token this list issued
            raise InvalidArgument(
                "page_token is not a token this API issued", [FieldViolation("page_token", "malformed")]
            ) from e
    chunk = list(items[start : start + page.size])
    more = start + len(chunk) < len(items)
    return chunk, next_page_token(page, keys[start + len(chunk) - 1] if chunk else (), more=more)


def next_page_token(page: Page, last: Key, *, more: bool) -> str:
    """The token for the page after one whose last item's key is `last` ('' when there is no more)."""
    if not more:
        return ""
    raw = json.dumps({"k": list(last), "q": page.query_digest}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def micros(at: datetime | None) -> int:
    """A time as a key's integer (microseconds since the epoch, exactly; no time sorts first)."""
    return (at - _EPOCH) // _MICROSECOND if at is not None else 0


def from_micros(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

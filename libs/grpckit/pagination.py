"""AIP-158 pagination: page sizes and opaque page tokens bound to their query.

A page token encodes where the next page starts and a digest of the query's
filters, so a token reused with different filters is rejected rather than
silently skipping results.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from libs.domain.errors import FieldViolation, InvalidArgument

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page:
    offset: int
    size: int
    query_digest: str


def parse_page(page_size: int, page_token: str, query: object = "") -> Page:
    if page_size < 0:
        raise InvalidArgument(
            "page_size must not be negative", [FieldViolation("page_size", "must be 0 (default) or positive")]
        )
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    digest = hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]
    if not page_token:
        return Page(0, size, digest)
    try:
        data = json.loads(base64.urlsafe_b64decode(page_token.encode() + b"=="))
        offset, token_digest = int(data["o"]), str(data["q"])
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidArgument(
            "page_token is not a token this API issued", [FieldViolation("page_token", "malformed")]
        ) from e
    if token_digest != digest or offset < 0:
        raise InvalidArgument(
            "page_token belongs to a query with different filters; restart without a page_token",
            [FieldViolation("page_token", "does not match the request's filters")],
        )
    return Page(offset, size, digest)


def paginate(items: Sequence[T], page: Page) -> tuple[list[T], str]:
    """The page's items and the token for the next page ('' after the last page)."""
    chunk = list(items[page.offset : page.offset + page.size])
    return chunk, next_page_token(page, len(chunk), more=page.offset + len(chunk) < len(items))


def next_page_token(page: Page, returned: int, *, more: bool) -> str:
    """The token for the page after one that returned `returned` items ('' when there is no more)."""
    if not more:
        return ""
    raw = json.dumps({"o": page.offset + returned, "q": page.query_digest}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Keyset pages: the token names the last item returned, not a position, so a list that changes
# between pages never repeats an item nor skips one that was there all along.


@dataclass(frozen=True)
class KeysetPage:
    after: str  # the key of the last item of the previous page ('' for the first page)
    size: int
    query_digest: str


def parse_keyset_page(page_size: int, page_token: str, query: object = "") -> KeysetPage:
    """As `parse_page`, for a list ordered by a unique key: the page starts after `after`."""
    page = parse_page(page_size, "", query)
    if not page_token:
        return KeysetPage("", page.size, page.query_digest)
    try:
        data = json.loads(base64.urlsafe_b64decode(page_token.encode() + b"=="))
        after, token_digest = str(data["k"]), str(data["q"])
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidArgument(
            "page_token is not a token this API issued", [FieldViolation("page_token", "malformed")]
        ) from e
    if token_digest != page.query_digest:
        raise InvalidArgument(
            "page_token belongs to a query with different filters; restart without a page_token",
            [FieldViolation("page_token", "does not match the request's filters")],
        )
    return KeysetPage(after, page.size, page.query_digest)


def next_keyset_token(page: KeysetPage, last_key: object, *, more: bool) -> str:
    """The token for the page after the one whose last item has `last_key` ('' when no more)."""
    if not more:
        return ""
    raw = json.dumps({"k": str(last_key), "q": page.query_digest}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")

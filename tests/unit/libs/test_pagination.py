import pytest

from libs.domain.errors import InvalidArgument
from libs.grpckit.pagination import MAX_PAGE_SIZE, next_keyset_token, paginate, parse_keyset_page, parse_page


def test_pages_cover_every_item_once():
    items = list(range(7))
    seen, token = [], ""
    while True:
        page = parse_page(3, token, "q")
        chunk, token = paginate(items, page)
        seen.extend(chunk)
        if not token:
            break
    assert seen == items


def test_page_size_is_capped_and_defaulted():
    assert parse_page(0, "").size == 50
    assert parse_page(10**6, "").size == MAX_PAGE_SIZE


@pytest.mark.parametrize("size", [-1])
def test_negative_page_size_is_invalid(size):
    with pytest.raises(InvalidArgument) as e:
        parse_page(size, "")
    assert e.value.violations[0].field == "page_size"


def test_a_token_from_another_query_or_garbage_is_rejected():
    _, token = paginate(list(range(10)), parse_page(2, "", {"state": 1}))
    with pytest.raises(InvalidArgument):
        parse_page(2, token, {"state": 2})
    with pytest.raises(InvalidArgument):
        parse_page(2, "%%%garbage", {"state": 1})


def test_keyset_pages_never_repeat_or_skip_an_item_that_stays_while_the_list_changes():
    items = {f"k{i:02}" for i in range(0, 20, 2)}
    stayed = set(items)
    seen, token, n = [], "", 0
    while True:
        page = parse_keyset_page(3, token, "q")
        chunk = [k for k in sorted(items) if k > page.after][: page.size + 1]
        shown = chunk[: page.size]
        seen.extend(shown)
        token = next_keyset_token(page, shown[-1] if shown else "", more=len(chunk) > page.size)
        if not token:
            break
        # Between pages the list changes: one item goes, one comes (before and after the cursor).
        n += 1
        gone = sorted(items)[n * 2 % len(items)]
        items.discard(gone)
        stayed.discard(gone)
        items |= {f"k{n:02}a", f"k{n + 10:02}a"}
    assert len(seen) == len(set(seen))
    assert stayed <= set(seen)


def test_a_keyset_token_from_another_query_or_garbage_is_rejected():
    page = parse_keyset_page(2, "", {"state": 1})
    token = next_keyset_token(page, "k1", more=True)
    assert parse_keyset_page(2, token, {"state": 1}).after == "k1"
    with pytest.raises(InvalidArgument):
        parse_keyset_page(2, token, {"state": 2})
    with pytest.raises(InvalidArgument):
        parse_keyset_page(2, "%%%garbage", {"state": 1})
    assert next_keyset_token(page, "k1", more=False) == ""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.domain.errors import InvalidArgument
from libs.grpckit.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    from_micros,
    micros,
    paginate,
    parse_page,
)


def _key(item: int) -> tuple[int]:
    return (item,)


def test_pages_cover_every_item_once():
    items = list(range(7))
    seen, token = [], ""
    while True:
        page = parse_page(3, token, "q")
        chunk, token = paginate(items, page, _key)
        seen.extend(chunk)
        if not token:
            break
    assert seen == items


def test_a_descending_list_pages_in_its_own_order():
    items = [(9, "b"), (9, "a"), (5, "z"), (1, "c")]  # newest first, ties by id descending
    seen, token = [], ""
    while True:
        chunk, token = paginate(items, parse_page(1, token), lambda item: item, descending=True)
        seen.extend(chunk)
        if not token:
            break
    assert seen == items


@given(
    st.lists(st.integers(0, 40), unique=True, max_size=30),
    st.lists(st.tuples(st.booleans(), st.integers(0, 60)), max_size=30),
    st.integers(1, 5),
)
def test_a_list_that_changes_while_it_is_paged_repeats_nobody_and_skips_only_those_who_left(
    start, changes, size
):
    """Members arrive (always after everyone already there, like a join) and leave between pages."""
    members = sorted(start)
    left: set[int] = set()
    seen: list[int] = []
    token, turn = "", 0
    while True:
        chunk, token = paginate(members, parse_page(size, token, "space"), _key)
        seen.extend(chunk)
        if not token:
            break
        for arrives, value in changes[turn : turn + 2]:  # a couple of changes between pages
            if arrives:
                members.append((members[-1] if members else 0) + 1 + value)
            elif members:
                gone = members[value % len(members)]
                members.remove(gone)
                left.add(gone)
        turn += 2
    assert len(seen) == len(set(seen))  # nobody twice
    assert set(members) <= set(seen)  # everyone still there at the end was listed
    assert set(start) - set(seen) <= left  # whoever was not listed had left


def test_page_size_is_capped_and_defaulted():
    assert parse_page(0, "").size == 50
    assert parse_page(10**6, "").size == MAX_PAGE_SIZE


@pytest.mark.parametrize("size", [-1])
def test_negative_page_size_is_invalid(size):
    with pytest.raises(InvalidArgument) as e:
        parse_page(size, "")
    assert e.value.violations[0].field == "page_size"


def test_a_token_from_another_query_or_garbage_is_rejected():
    _, token = paginate(list(range(10)), parse_page(2, "", {"state": 1}), _key)
    with pytest.raises(InvalidArgument):
        parse_page(2, token, {"state": 2})
    with pytest.raises(InvalidArgument):
        parse_page(2, "%%%garbage", {"state": 1})


def test_a_token_whose_key_has_another_shape_is_rejected():
    _, token = paginate(["a", "b", "c"], parse_page(1, "", "q"), lambda s: (s,))
    with pytest.raises(InvalidArgument):
        paginate(list(range(5)), parse_page(1, token, "q"), _key)


def test_times_become_exact_integer_keys():
    at = from_micros(1_764_763_200_123_456)
    assert micros(at) == 1_764_763_200_123_456 and micros(None) == 0


def test_every_page_size_field_says_the_sizes_the_code_uses():
    from libs.contracts.catalogue import descriptor_set

    said = {}
    for file in descriptor_set().file:
        comments = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
        for m, message in enumerate(file.message_type):
            for f, field in enumerate(message.field):
                if field.name == "page_size":
                    said[message.name] = comments.get((4, m, 2, f), "")
    assert len(said) >= 8, said
    for message, comment in said.items():
        assert f"At most {MAX_PAGE_SIZE} " in comment, (message, comment)
        assert f"0 means {DEFAULT_PAGE_SIZE};" in comment, (message, comment)

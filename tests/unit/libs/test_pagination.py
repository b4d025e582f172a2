import pytest

from libs.domain.errors import InvalidArgument
from libs.grpckit.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, paginate, parse_page


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
